// The w4a8 command line: one yargs module per command (lib/cli/commands/*).
// Exit codes: 0 ok, 1 failure (bad input, runtime error), 2 usage error, 130/143/129 stopped by
// SIGINT/SIGTERM/SIGHUP.
import yargs from 'yargs';
import { installStopSignals, signalPoint } from '../util/cancel';

export function main(argv: string[]): void {
  // First of all, so that a signal while the commands (and ONNX Runtime) load or the arguments are
  // parsed still exits 130/143/129 after the cleanups, instead of taking Node's default action.
  installStopSignals();
  signalPoint('start');
  // Loaded only now (about 0.1 s: every floor and onnxruntime-node), after the handlers are in place.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { commands } = require('./commands') as typeof import('./commands');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { reportFailure } = require('./run_command') as typeof import('./run_command');
  const parser = yargs(argv)
    .scriptName('w4a8')
    .usage('$0 <command> [options]\n\nQuantize ONNX LLMs to 4-bit weights and 8-bit activations, evaluate them, run W4A8 kernels.')
    .strict()
    .demandCommand(1, 'Give a command; `w4a8 --help` lists them.')
    .recommendCommands()
    .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON on stdout (progress as JSON lines on stderr)' })
    .option('quiet', { type: 'boolean', default: false, describe: 'No progress output' })
    .epilogue('Exit codes: 0 success, 1 failure (bad input or runtime error), 2 usage error, 130/143/129 stopped by SIGINT (Ctrl-C)/SIGTERM/SIGHUP.\nNO_COLOR=1 disables colour.')
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
