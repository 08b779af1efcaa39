// `w4a8 bench e2e` (a target of the bench command, bench.ts): the options and the run. The model set
// comes from lib/pipeline/e2e_models.ts (generated into a temporary folder, removed afterwards), the
// timing from lib/bench/e2e.ts.
import { UsageError } from '../../util/errors';
import { runE2eBench } from '../../bench/e2e';
import { e2eBenchTable } from '../../bench/e2e_report';
import { numThreads } from '../../native/kernels';
import { E2E_PRESETS, prepareE2eModels } from '../../pipeline/e2e_models';
import type { CommandContext } from '../run_command';
import { integerOption } from '../numeric_options';
import { MAX_THREADS } from '../threads_option';

export interface BenchE2eArgs {
  model?: string;
  'prompt-tokens': string;
  'new-tokens': number;
  layers?: number;
  group: number;
  'keep-logits': boolean;
  seed: number;
  rounds?: number;
  threads?: number;
  quick: boolean;
  'ort-spinning'?: 'on' | 'off';
  'baseline-engine'?: 'ort' | 'w4a8';
}

export const E2E_DEFAULT_ROUNDS = 3;

/** The bench command's options that only `e2e` reads. */
export const benchE2eOptions = {
  model: { type: 'string', describe: `e2e: a float ONNX decoder with a KV cache (fp32, or fp16: ort-fp32 then runs it in fp16 as it is), or a preset (${E2E_PRESETS.join(', ')}); quant: quantize this whole model (a preset or a path) with each of --methods` },
  'prompt-tokens': { type: 'string', default: '128', describe: 'e2e: prompt length(s) in tokens, comma-separated (e.g. 128,512)' },
  'new-tokens': { type: 'number', default: 64, describe: 'e2e: greedy decode steps after the prefill' },
  layers: { type: 'number', describe: 'e2e, quant --model: layer count of a random preset (e.g. llama-7b --layers 4)' },
  group: { type: 'number', default: 128, describe: 'e2e: int4 group size along K (asymmetric, round to nearest)' },
  'keep-logits': { type: 'boolean', default: false, describe: 'e2e: keep the logits projection (lm_head) in float in the quantized variants' },
  seed: { type: 'number', default: 1, describe: 'e2e: seed of the random prompt ids' },
  'baseline-engine': {
    type: 'string', choices: ['w4a8', 'ort'] as const,
    describe: "e2e: the session of the ONNX Runtime variants: w4a8 (default), the addon's session of the same libonnxruntime, our variants' call path; ort, onnxruntime-node",
  },
} as const;

function promptLengths(text: string): number[] {
  return String(text).split(',').map((part) => {
    const v = Number(part.trim());
    if (!Number.isInteger(v) || v < 1 || v > 1 << 20) throw new UsageError(`--prompt-tokens: "${part}" is not a token count >= 1 (e.g. 128,512)`);
    return v;
  });
}

export async function benchE2e(args: BenchE2eArgs, ctx: CommandContext): Promise<unknown> {
  if (typeof args.model !== 'string' || args.model === '') throw new UsageError(`bench e2e needs --model <model.onnx | ${E2E_PRESETS.join(' | ')}>`);
  const promptTokens = promptLengths(args['prompt-tokens']);
  const newTokens = integerOption('new-tokens', args['new-tokens'], 1, 1 << 20);
  const layers = args.layers === undefined ? undefined : integerOption('layers', args.layers, 1, 1024);
  const groupSize = integerOption('group', args.group, 16);
  const seed = integerOption('seed', args.seed, 0, 2 ** 31);
  const rounds = integerOption('rounds', args.rounds ?? (args.quick ? 1 : E2E_DEFAULT_ROUNDS), 1, 1000);
  const threads = integerOption('threads', args.threads ?? numThreads(), 1, MAX_THREADS);
  if (process.env.W4A8_ORT_LIBRARY && args['baseline-engine'] === 'ort') {
    ctx.progress.log(`W4A8_ORT_LIBRARY is set, but --baseline-engine ort runs the ONNX Runtime variants in onnxruntime-node's own library, not in ${process.env.W4A8_ORT_LIBRARY}`, 'warn');
  }
  const started = Date.now();
  const set = await prepareE2eModels({ model: args.model, layers, groupSize, keepLogits: args['keep-logits'], progress: ctx.progress, cancel: ctx.cancel });
  const preparedS = (Date.now() - started) / 1000;
  try {
    const report = await runE2eBench({
      models: set.models, promptTokens, newTokens, rounds, threads, seed, vocab: set.vocab || undefined, maxLength: set.maxLength,
      ortSpinning: args['ort-spinning'] === undefined ? undefined : args['ort-spinning'] === 'on', // default: runE2eBench's
      baselineEngine: args['baseline-engine'],
      progress: ctx.progress, cancel: ctx.cancel,
    });
    const command = `w4a8 ${process.argv.slice(2).join(' ')}`;
    const genai = set.genaiSkipped ? { genaiSkipped: set.genaiSkipped } : {};
    const full = { ...report, model: set.source, quantization: set.quantization, ...genai, prepareSeconds: preparedS, benchSeconds: (Date.now() - started) / 1000 - preparedS, command };
    if (!ctx.json) {
      ctx.out(`CPU: ${report.cpu}; threads ${report.threads}; default ISA ${report.isa}; model ${set.source}; ${set.quantization}; ${rounds} round(s); ONNX Runtime variants in the ${report.baselineEngine === 'w4a8' ? "addon's session (our variants' call path)" : 'onnxruntime-node session'}\n`);
      if (process.env.W4A8_ORT_LIBRARY) ctx.out(`ONNX Runtime library (W4A8_ORT_LIBRARY): ${report.ortLibrary}\n`);
      if (set.genaiSkipped) ctx.out(`No ONNX Runtime GenAI-layout variants: ${set.genaiSkipped}.\n`);
      ctx.out(e2eBenchTable(report));
    }
    return full;
  } finally {
    set.dispose();
  }
}
