// `w4a8 generate <model.onnx>`: greedy decoding (or sampling with --temperature), streamed to
// stdout as llama2.c's `run` prints it; speed (tokens/s) and the seed on stderr, or in the --json result.
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../util/errors';
import { generateStream, type GenerateResult } from '../../eval/generate';
import { runCommand, CommonArgs } from '../run_command';
import { integerOption, numberOption, optionalIntegerOption } from '../numeric_options';
import { engineOption, type Engine } from '../engine_option';
import { applyThreads, threadsOption } from '../threads_option';

interface GenerateArgs extends CommonArgs {
  model: string;
  prompt: string;
  'max-new-tokens': number;
  tokenizer?: string;
  'kv-cache': boolean;
  engine?: Engine;
  threads?: number;
  temperature: number;
  'top-k': number;
  'top-p': number;
  seed?: number;
  stop?: string[];
  lookup: number;
}

export const generateCommand: CommandModule<CommonArgs, GenerateArgs> = {
  command: 'generate <model>',
  describe: 'Text generation from an ONNX decoder, greedy or sampled, streamed (KV cache when the model has one)',
  builder: (y: Argv<CommonArgs>) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'The ONNX model (external data beside it)' })
      .option('prompt', { type: 'string', default: '', describe: 'Text to continue (default: start from BOS)' })
      .option('max-new-tokens', { type: 'number', default: 256, describe: 'New tokens at most' })
      .option('tokenizer', { type: 'string', describe: 'tokenizer.json or llama2.c tok*.bin (default: the one beside the model)' })
      .option('kv-cache', { type: 'boolean', default: true, describe: "Use the model's key/value cache when it has one (--no-kv-cache recomputes every step)" })
      .option('temperature', { type: 'number', default: 0, describe: 'Sampling temperature; 0 picks the most likely token (greedy)' })
      .option('top-k', { type: 'number', default: 0, describe: 'Sample among the k most likely tokens only (0: all)' })
      .option('top-p', { type: 'number', default: 0.9, describe: 'Nucleus sampling: among the most likely tokens whose mass first exceeds p (1: off)' })
      .option('lookup', { type: 'number', default: 0, describe: 'Prompt-lookup decoding: up to N draft tokens per step from earlier text, checked in one pass (greedy only; the greedy tokens, up to int8 near-ties)' })
      .option('stop', { type: 'string', array: true, describe: 'End generation at this text, which is not printed (repeatable)' })
      .option('seed', { type: 'number', describe: 'Seed of the sampler, a positive integer (default: a random one, printed)' })
      .option('threads', threadsOption)
      .option('engine', engineOption) as unknown as Argv<GenerateArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      applyThreads(args.threads);
      const maxNewTokens = integerOption('max-new-tokens', args['max-new-tokens'], 0);
      if (typeof args.prompt !== 'string') throw new UsageError('--prompt needs text');
      if (args.tokenizer === '') throw new UsageError('--tokenizer needs a file');
      const temperature = numberOption('temperature', args.temperature, { min: 0 });
      const topK = integerOption('top-k', args['top-k'], 0, 0x7fffffff);
      const topP = numberOption('top-p', args['top-p'], { min: 0, max: 1 });
      const seed = optionalIntegerOption('seed', args.seed, 1, Number.MAX_SAFE_INTEGER);
      const lookup = integerOption('lookup', args.lookup, 0, 64);
      if (lookup > 0 && temperature > 0) throw new UsageError('--lookup checks drafts against the greedy choice: it needs --temperature 0');
      const stop = (args.stop ?? []).map(String);
      if (stop.some((s) => s === '')) throw new UsageError('--stop needs non-empty text');
      let streamed = false;
      // A reader that goes away (`| head`) ends the generation quietly, as it does for other tools.
      let readerGone = false;
      const onStdoutError = (err: NodeJS.ErrnoException): void => {
        if (err.code !== 'EPIPE') throw err;
        readerGone = true;
      };
      process.stdout.on('error', onStdoutError);
      // Text goes to stdout as it is decided; a progress bar would garble it, so none here.
      const stream = generateStream({ modelPath: args.model, prompt: args.prompt, maxNewTokens, tokenizer: args.tokenizer, kvCache: args['kv-cache'], engine: args.engine, cancel: ctx.cancel, temperature, topK, topP, seed, stop, lookup });
      let result: GenerateResult;
      try {
        for (;;) {
          const step = await stream.next();
          if (step.done) {
            result = step.value;
            break;
          }
          if (readerGone) {
            await stream.return(undefined as never); // releases the session
            return;
          }
          if (!ctx.json && step.value.text) {
            streamed = true;
            process.stdout.write(step.value.text);
          }
        }
      } finally {
        process.stdout.off('error', onStdoutError);
      }
      if (ctx.json) {
        ctx.out(
          JSON.stringify({
            text: result.text,
            completion: result.completion,
            ids: result.ids,
            promptTokens: result.promptTokens,
            newTokens: result.newTokens,
            stop: result.stop,
            stopText: result.stopText ?? null,
            kvCache: result.kvCache,
            sampling: result.sampling,
            lookup: result.lookup ?? null,
            maxLength: result.maxLength?.tokens ?? null,
            prefillTokPerS: result.prefillTokPerS,
            decodeTokPerS: result.decodeTokPerS,
          }),
        );
        return;
      }
      // llama2.c ends its output with a newline.
      process.stdout.write('\n');
      if (result.stop === 'max-length') {
        ctx.progress.log(`stopped at the model's maximum length of ${result.maxLength!.tokens} tokens (${result.maxLength!.source})`, 'warn');
      }
      if (!streamed && !args.quiet) ctx.progress.log('(no text generated)');
      if (!args.quiet) {
        const decode = result.newTokens > 1 ? `, decode ${result.decodeTokPerS.toFixed(1)} tokens/s` : '';
        ctx.progress.log(
          `${result.newTokens} new tokens (${result.kvCache ? 'KV cache' : 'full recompute'}${samplingNote(result)}${lookupNote(result)}${stopNote(result)}): prefill ${result.promptTokens} tokens at ` +
            `${result.prefillTokPerS.toFixed(1)} tokens/s${decode}`,
        );
      }
    }),
};

/** ", sampled at temperature 0.8, top-p 0.9, seed 42" (what repeats the run), or nothing for greedy. */
function samplingNote(result: GenerateResult): string {
  const s = result.sampling;
  if (s.temperature === 0) return '';
  const topK = s.topK > 0 ? `, top-k ${s.topK}` : '';
  const topP = s.topP > 0 && s.topP < 1 ? `, top-p ${s.topP}` : '';
  return `, sampled at temperature ${s.temperature}${topK}${topP}, seed ${s.seed}`;
}

function stopNote(result: GenerateResult): string {
  return result.stopText !== undefined ? `, stopped at ${JSON.stringify(result.stopText)}` : '';
}

/** ", lookup: 40 of 52 drafted tokens confirmed in 30 passes". */
function lookupNote(result: GenerateResult): string {
  const l = result.lookup;
  return l ? `, lookup: ${l.confirmed} of ${l.drafted} drafted tokens confirmed, ${l.passes} passes` : '';
}
