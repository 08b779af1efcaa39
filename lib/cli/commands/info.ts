// `w4a8 info`: what this build can do (CPU instruction sets, CUDA).
import type { CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { capabilities } from '../../native/capabilities';

export const infoCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'info',
  describe: 'Show the native build: CPU instruction sets found, CUDA compiled in and devices',
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const caps = capabilities();
      if (ctx.json) {
        ctx.out(JSON.stringify(caps));
        return;
      }
      for (const [key, value] of Object.entries(caps)) ctx.out(`${key}: ${Array.isArray(value) ? value.join(', ') : String(value)}`);
    }),
};
