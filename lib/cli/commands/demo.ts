// `w4a8 demo` (what `npm run demo` runs): import stories260K, quantize it to W4A8, and print
// the perplexity of fp32 and W4A8 side by side.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandModule } from 'yargs';
import { integerOption } from '../numeric_options';
import { runCommand, CommonArgs } from '../run_command';
import { runDemo } from '../../pipeline/demo';

interface DemoArgs extends CommonArgs {
  out: string;
  'max-tokens': number;
}

export const demoCommand: CommandModule<CommonArgs, DemoArgs> = {
  command: 'demo',
  describe: 'Import stories260K from ../shared, quantize it to W4A8, compare perplexity with fp32',
  builder: (y) =>
    y
      .option('out', { type: 'string', default: 'w4a8-demo', describe: 'Folder for the imported and quantized models' })
      .option('max-tokens', { type: 'number', default: 20000, describe: 'Predictions scored per model' }),
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const out = path.resolve(args.out);
      fs.mkdirSync(out, { recursive: true });
      const result = await runDemo({ outDir: out, maxTokens: integerOption('max-tokens', args['max-tokens'], 1), progress: ctx.progress, cancel: ctx.cancel });
      if (ctx.json) {
        ctx.out(JSON.stringify(result));
        return;
      }
      ctx.out(result.table);
    }),
};
