// The w4a8 command line: one yargs module per command (lib/cli/commands/*).
// Exit codes: 0 ok, 1 failure (bad input, runtime error), 2 usage error.
import yargs from 'yargs';
import { commands } from './commands';
import { reportFailure } from './run_command';

export function main(argv: string[]): void {
  const parser = yargs(argv)
    .scriptName('w4a8')
    .usage('$0 <command> [options]\n\nQuantize ONNX LLMs to 4-bit weights and 8-bit activations, evaluate them, run W4A8 kernels.')
    .strict()
    .demandCommand(1, 'Give a command; `w4a8 --help` lists them.')
    .recommendCommands()
    .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON on stdout (progress as JSON lines on stderr)' })
    .option('quiet', { type: 'boolean', default: false, describe: 'No progress output' })
    .epilogue('Exit codes: 0 success, 1 failure (bad input or runtime error), 2 usage error, 130 stopped by Ctrl-C.\nNO_COLOR=1 disables colour.')
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) {
        reportFailure(err);
        return;
      }
      process.stderr.write(`w4a8: ${msg}\nRun \`w4a8 --help\` for usage.\n`);
      process.exit(2);
    });
  for (const cmd of commands) parser.command(cmd);
  void parser.parseAsync();
}
