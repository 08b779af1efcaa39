// `w4a8 eval <model.onnx> --text <file>`: perplexity under the fixed protocol of lib/eval/documents.ts.
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../util/errors';
import { evaluatePerplexity } from '../../eval/perplexity';
import { runCommand, CommonArgs } from '../run_command';
import { integerOption } from '../numeric_options';
import { engineOption, type Engine } from '../engine_option';
import { applyThreads, threadsOption } from '../threads_option';

interface EvalArgs extends CommonArgs {
  model: string;
  text: string;
  tokenizer?: string;
  ctx: number;
  'max-tokens': number;
  'oov-id'?: number;
  engine?: Engine;
  threads?: number;
}

export const evalCommand: CommandModule<CommonArgs, EvalArgs> = {
  command: 'eval <model>',
  describe: 'Perplexity of an ONNX decoder on a text (documents split on blank lines, BOS per document, windows of --ctx)',
  builder: (y: Argv<CommonArgs>) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'The ONNX model (external data beside it)' })
      .option('text', { type: 'string', demandOption: true, describe: 'UTF-8 text to evaluate on' })
      .option('tokenizer', { type: 'string', describe: 'tokenizer.json or llama2.c tok*.bin (default: the one beside the model)' })
      .option('ctx', { type: 'number', default: 512, describe: 'Window length in tokens' })
      .option('max-tokens', { type: 'number', default: 20000, describe: 'Predictions scored at most' })
      .option('oov-id', { type: 'number', describe: 'Map token ids beyond the model\'s vocabulary to this id, with a warning (test models only)' })
      .option('threads', threadsOption)
      .option('engine', engineOption) as unknown as Argv<EvalArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      applyThreads(args.threads);
      const window = integerOption('ctx', args.ctx, 2);
      const maxTokens = integerOption('max-tokens', args['max-tokens'], 1);
      if (!args.text) throw new UsageError('--text needs a file');
      const oovId = args['oov-id'] === undefined ? undefined : integerOption('oov-id', args['oov-id'], 0);
      if (args.tokenizer === '') throw new UsageError('--tokenizer needs a file');
      const result = await evaluatePerplexity({
        modelPath: args.model,
        textPath: args.text,
        tokenizer: args.tokenizer,
        ctx: window,
        maxTokens,
        oovId,
        engine: args.engine,
        progress: ctx.progress,
        cancel: ctx.cancel,
      });
      if (ctx.json) {
        ctx.out(JSON.stringify({ ppl: result.ppl, nll: result.nll, tokens: result.tokens, windows: result.windows, ctx: result.ctx }));
        return;
      }
      ctx.out(`ppl ${result.ppl.toFixed(4)} (nll ${result.nll.toFixed(4)}/token over ${result.tokens} tokens, ${result.windows} windows of ctx ${result.ctx})`);
    }),
};
