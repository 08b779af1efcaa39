// `w4a8 import llama2c <checkpoint.bin> --tokenizer <tok.bin> -o <dir>`: turn a llama2.c
// checkpoint into <dir>/model.onnx (standard ops, fp32 MatMul weights, KV cache) with its tokenizer
// beside it. `w4a8 import llama2c --random <preset> -o <dir>` writes the same graph with random
// weights in a LLaMA shape (tinyllama-1.1b, llama-7b, ...) and a placeholder tokenizer. `--layout
// genai` writes ONNX Runtime GenAI's graph of fused contrib ops instead of standard ops.
import type { Argv, CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { UsageError } from '../../util/errors';
import { importLlama2c } from '../../import/llama2c';
import { importRandomLlama, RANDOM_MODEL_DTYPES, RANDOM_PRESETS, type RandomModelDtype } from '../../import/llama2c_random';
import { integerOption } from '../numeric_options';
import { DECODER_LAYOUTS, type DecoderLayout } from '../../import/decoder_layout';

interface ImportLlama2cArgs extends CommonArgs {
  checkpoint?: string;
  tokenizer?: string;
  output: string;
  random?: string;
  layers?: number;
  seed: number;
  dtype?: RandomModelDtype;
  layout: DecoderLayout;
}

const llama2cCommand: CommandModule<CommonArgs, ImportLlama2cArgs> = {
  command: 'llama2c [checkpoint]',
  describe: 'Import a llama2.c legacy (v0) checkpoint, e.g. stories260K.bin, or make a random-weight model (--random)',
  builder: (y: Argv<CommonArgs>) =>
    y
      .positional('checkpoint', { type: 'string', describe: 'the llama2.c .bin checkpoint (none with --random)' })
      .option('tokenizer', { alias: 't', type: 'string', describe: 'its llama2.c tokenizer (tok*.bin)' })
      .option('random', { type: 'string', choices: Object.keys(RANDOM_PRESETS), describe: 'no checkpoint: random weights in this shape' })
      .option('layers', { type: 'number', describe: "with --random: this many layers instead of the preset's" })
      .option('seed', { type: 'number', default: 0, describe: 'with --random: seed of the weights' })
      .option('dtype', { type: 'string', choices: RANDOM_MODEL_DTYPES, describe: 'with --random: float32 (default) or float16 weights, activations and cache' })
      .option('layout', {
        type: 'string', choices: DECODER_LAYOUTS, default: 'standard',
        describe: 'graph: standard ONNX ops (any runtime; what --format w4a8 fuses into its own attention), or genai: ONNX Runtime GenAI\'s contrib ops (GroupQueryAttention, SkipSimplifiedLayerNormalization; head size a multiple of 16)',
      })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'output folder (model.onnx and the tokenizer go there)' })
      .example('$0 import llama2c stories260K.bin -t tok512.bin -o models/stories260K', '')
      .example('$0 import llama2c --random tinyllama-1.1b -o models/tinyllama-random', '')
      .example('$0 import llama2c --random llama-7b --dtype float16 -o models/llama7b-fp16', '')
      .example('$0 import llama2c --random tinyllama-1.1b --layout genai -o models/tinyllama-genai', '') as Argv<ImportLlama2cArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      if (args.random !== undefined) {
        if (args.checkpoint !== undefined || args.tokenizer !== undefined) throw new UsageError('--random makes its own weights and tokenizer; give no checkpoint or --tokenizer');
        const layers = args.layers === undefined ? undefined : integerOption('layers', args.layers, 1);
        const seed = integerOption('seed', args.seed, 0);
        const r = await importRandomLlama(args.random, args.output, { layers, seed, dtype: args.dtype, layout: args.layout, progress: ctx.progress });
        if (ctx.json) {
          ctx.out(JSON.stringify(r));
          return;
        }
        const c = r.config;
        ctx.out(`model: ${r.modelPath} (weights in ${r.dataPath})`);
        ctx.out(`tokenizer: ${r.tokenizerPath} (placeholder pieces)`);
        ctx.out(
          `config: preset ${r.preset}, seed ${r.seed}, ${r.dtype}, ${args.layout} layout: dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), ` +
            `vocab ${c.vocabSize}, seq_len ${c.seqLen}`,
        );
        return;
      }
      if (args.layers !== undefined || args.seed !== 0 || args.dtype !== undefined) throw new UsageError('--layers, --seed and --dtype go with --random');
      if (!args.checkpoint) throw new UsageError('give a llama2.c checkpoint, or --random <preset>');
      if (!args.tokenizer) throw new UsageError('give the checkpoint\'s tokenizer with --tokenizer <tok*.bin>');
      const result = await importLlama2c(args.checkpoint, args.tokenizer, args.output, ctx.progress, { layout: args.layout });
      if (ctx.json) {
        ctx.out(JSON.stringify(result));
        return;
      }
      const c = result.config;
      ctx.out(`model: ${result.modelPath}`);
      ctx.out(`tokenizer: ${result.tokenizerPath}`);
      ctx.out(
        `config: dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), ` +
          `vocab ${c.vocabSize}, seq_len ${c.seqLen}, ${c.sharedClassifier ? 'shared' : 'separate'} classifier, ${args.layout} layout`,
      );
    }),
};

export const importCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'import <format>',
  describe: 'Convert a checkpoint from another format into an ONNX model (formats: llama2c)',
  builder: (y: Argv<CommonArgs>) => y.command(llama2cCommand).demandCommand(1, 'Give a format: llama2c') as Argv<CommonArgs>,
  handler: () => undefined,
};
