// `w4a8 import llama2c <checkpoint.bin> --tokenizer <tok.bin> -o <dir>`: turn a llama2.c
// checkpoint into <dir>/model.onnx (standard ops, fp32 MatMul weights) with its tokenizer beside it.
import type { Argv, CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { importLlama2c } from '../../import/llama2c';

interface ImportLlama2cArgs extends CommonArgs {
  checkpoint: string;
  tokenizer: string;
  output: string;
}

const llama2cCommand: CommandModule<CommonArgs, ImportLlama2cArgs> = {
  command: 'llama2c <checkpoint>',
  describe: 'Import a llama2.c legacy (v0) checkpoint, e.g. stories260K.bin',
  builder: (y: Argv<CommonArgs>) =>
    y
      .positional('checkpoint', { type: 'string', demandOption: true, describe: 'the llama2.c .bin checkpoint' })
      .option('tokenizer', { alias: 't', type: 'string', demandOption: true, describe: 'its llama2.c tokenizer (tok*.bin)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'output folder (model.onnx and the tokenizer go there)' })
      .example('$0 import llama2c stories260K.bin -t tok512.bin -o models/stories260K', '') as Argv<ImportLlama2cArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const result = await importLlama2c(args.checkpoint, args.tokenizer, args.output, ctx.progress);
      if (ctx.json) {
        ctx.out(JSON.stringify(result));
        return;
      }
      const c = result.config;
      ctx.out(`model: ${result.modelPath}`);
      ctx.out(`tokenizer: ${result.tokenizerPath}`);
      ctx.out(
        `config: dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), ` +
          `vocab ${c.vocabSize}, seq_len ${c.seqLen}, ${c.sharedClassifier ? 'shared' : 'separate'} classifier`,
      );
    }),
};

export const importCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'import <format>',
  describe: 'Convert a checkpoint from another format into an ONNX model (formats: llama2c)',
  builder: (y: Argv<CommonArgs>) => y.command(llama2cCommand).demandCommand(1, 'Give a format: llama2c') as Argv<CommonArgs>,
  handler: () => undefined,
};
