// Shared plumbing for command handlers: progress mode, Ctrl-C, and error -> exit code.
import { stderrColors as pc } from '../util/colors';
import { UsageError, W4A8Error, CancelledError } from '../util/errors';
import { chooseProgressMode, createProgress, Progress } from '../util/progress';
import { CancelToken, markCommandFinished, signalPoint, withSignals } from '../util/cancel';

export interface CommonArgs {
  json: boolean;
  quiet: boolean;
}

export interface CommandContext {
  progress: Progress;
  cancel: CancelToken;
  json: boolean;
  /** Print a result on stdout (the only thing commands print there). */
  out(text: string): void;
}

/** Print one clear line for an error and set the exit code; stacks only with W4A8_DEBUG=1. */
export function reportFailure(err: unknown): void {
  const debug = process.env.W4A8_DEBUG === '1';
  // One line, whatever the message holds (a parser's message may quote the file's own newlines).
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s*[\r\n]+\s*/g, ' ').trim();
  process.stderr.write(`${pc.red('w4a8: error:')} ${message}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  if (err instanceof UsageError) {
    process.exitCode = 2;
  } else if (err instanceof CancelledError) {
    process.exitCode = err.exitCode;
  } else {
    process.exitCode = 1;
  }
}

/** Wrap a command body: builds the context, maps errors to exit codes, never throws. */
export async function runCommand(args: CommonArgs, body: (ctx: CommandContext) => Promise<void>): Promise<void> {
  const progress = createProgress(chooseProgressMode(args));
  signalPoint('command');
  try {
    await withSignals(async (cancel) => {
      await body({ progress, cancel, json: args.json, out: (text) => process.stdout.write(text.endsWith('\n') ? text : text + '\n') });
    });
  } catch (err) {
    progress.stop();
    reportFailure(err);
  }
  markCommandFinished();
  signalPoint('finished');
}

export { W4A8Error, UsageError };
