// `w4a8 bench cpu`: time our CPU W4A8 kernels against ONNX Runtime MatMulNBits / fp32 MatMul on the
// same weights (lib/bench/cpu.ts explains the method). `w4a8 bench quant`: RTN / AWQ / GPTQ time on one
// LLaMA-7B decoder layer (lib/bench/quant.ts). `bench all` runs every benchmark that works from Node,
// cpu then quant (CUDA timings come from native/bench on the GPU machine).
import type { CommandModule } from 'yargs';
import { UsageError } from '../../util/errors';
import { runCommand, CommonArgs } from '../run_command';
import { runCpuBench } from '../../bench/cpu';
import { cpuBenchTable, emptyCallLine } from '../../bench/cpu_report';
import { cpuIsaOverrideIgnored, numThreads } from '../../native/kernels';
import { LLAMA7B, runQuantBench, type BenchActFormat } from '../../bench/quant';
import { quantBenchTable } from '../../bench/quant_report';
import type { CommandContext } from '../run_command';
import { applyThreads, MAX_THREADS } from '../threads_option';
import { benchE2e, benchE2eOptions, type BenchE2eArgs } from './bench_e2e';
import { RANDOM_MODEL_DTYPES, type RandomModelDtype } from '../../import/llama2c_random';
import { MODEL_BENCH_METHODS, modelQuantBenchTable, runModelQuantBench, type ModelBenchMethod } from '../../pipeline/quant_model_bench';
import { integerOption } from '../numeric_options';
import { sharedDir } from '../../pipeline/demo_assets';
import * as path from 'node:path';

interface BenchArgs extends CommonArgs, BenchE2eArgs {
  target: 'cpu' | 'quant' | 'e2e' | 'all';
  tokens: number;
  'awq-rows': number;
  aformat: 'int8' | 'none' | 'both';
  hidden: number;
  intermediate: number;
  shapes?: string;
  m?: string;
  rounds?: number;
  threads?: number;
  'set-mb': number;
  'batch-ms': number;
  quick: boolean;
  'ort-spinning'?: 'on' | 'off';
  methods: string;
  calib?: string;
  dtype?: RandomModelDtype;
}

// Named shape sets for --shapes (K x N of a decoder layer's projections and the LM head).
export const SHAPE_PRESETS: Record<string, string> = {
  llama7b: '4096x4096,4096x11008,11008x4096',
  tinyllama: '2048x2048,2048x256,2048x5632,5632x2048,2048x32000',
};
// The default keeps `npm run bench -- cpu` near 8 minutes on 2 cores (building each shape's 1 GiB
// rotation sets dominates): LLaMA-7B's square projection and all of TinyLlama-1.1B's shapes.
const DEFAULT_SHAPES = '4096x4096,tinyllama';
const DEFAULT_MS = '1,8,128,512';
const QUICK_SHAPES = '4096x4096';
const QUICK_MS = '1,32,128';

/** "4096x4096,4096x11008" or a preset name ("tinyllama,4096x4096") -> [{k, n}] (shapes are K x N). */
export function parseShapes(text: string): { k: number; n: number }[] {
  const expanded = text.split(',').map((part) => SHAPE_PRESETS[part.trim().toLowerCase()] ?? part).join(',');
  return expanded.split(',').map((part) => {
    const m = /^\s*(\d+)\s*x\s*(\d+)\s*$/i.exec(part);
    const k = m ? Number(m[1]) : NaN, n = m ? Number(m[2]) : NaN;
    if (!m || k < 1 || n < 1 || k > 65536 || n > 65536) {
      throw new UsageError(`--shapes: "${part}" is not KxN with 1 <= K, N <= 65536 (e.g. 4096x11008) or a preset (${Object.keys(SHAPE_PRESETS).join(', ')})`);
    }
    return { k, n };
  });
}

/** "1,8,32" -> [1, 8, 32]. */
export function parseTokenCounts(text: string): number[] {
  return text.split(',').map((part) => {
    const v = Number(part.trim());
    if (!Number.isInteger(v) || v < 1 || v > 65536) throw new UsageError(`--m: "${part}" is not a token count in 1..65536`);
    return v;
  });
}

export const benchCommand: CommandModule<CommonArgs, BenchArgs> = {
  command: 'bench <target>',
  describe: 'Benchmark the CPU W4A8 kernels (cpu), quantization time (quant) and whole-model prefill and decode (e2e)',
  builder: (y) =>
    y
      .positional('target', { type: 'string', choices: ['cpu', 'quant', 'e2e', 'all'] as const, demandOption: true, describe: 'cpu kernels, quant(ization) time, e2e (whole-model prefill/decode), or all (cpu then quant)' })
      .options(benchE2eOptions)
      .option('shapes', { type: 'string', describe: `Weight shapes KxN or presets (${Object.entries(SHAPE_PRESETS).map(([k, v]) => `${k} = ${v}`).join('; ')}), comma-separated (default ${DEFAULT_SHAPES})` })
      .option('m', { type: 'string', describe: `Token counts M, comma-separated (default ${DEFAULT_MS})` })
      .option('rounds', { type: 'number', describe: 'Interleaved timing rounds (cpu: default 7, 3 with --quick; e2e: default 3, 1 with --quick)' })
      .option('threads', { type: 'number', describe: 'Threads for our kernels and quantizers, and ORT intraOpNumThreads (default: all hardware threads)' })
      .option('set-mb', { type: 'number', default: 1024, describe: 'MiB of distinct weights each variant rotates through (>= 1024 measures DRAM at M=1)' })
      .option('batch-ms', { type: 'number', default: 20, describe: 'Target duration of one timed batch of calls' })
      .option('ort-spinning', { type: 'string', choices: ['on', 'off'] as const, describe: 'ONNX Runtime intra-op threads spin between parallel loops (cpu: the ORT side, default off, measured faster there on 2 cores; e2e: every variant, both engines, default on, as ONNX Runtime itself)' })
      .option('quick', { type: 'boolean', default: false, describe: `Fewer shapes and M (${QUICK_SHAPES}; M ${QUICK_MS}; 3 rounds) unless given` })
      .option('tokens', { type: 'number', default: 8192, describe: 'quant: calibration tokens per activation' })
      .option('awq-rows', { type: 'number', default: 1024, describe: 'quant: rows AWQ searches on (a sample of the tokens)' })
      .option('aformat', { type: 'string', choices: ['int8', 'none', 'both'] as const, default: 'both' as const, describe: 'quant: activations AWQ measures candidates with' })
      .option('hidden', { type: 'number', default: LLAMA7B.hidden, describe: 'quant: hidden size (smaller for a quick run)' })
      .option('intermediate', { type: 'number', default: LLAMA7B.intermediate, describe: 'quant: MLP size' })
      .option('methods', { type: 'string', default: MODEL_BENCH_METHODS.join(','), describe: `quant --model: methods to run, comma-separated (${MODEL_BENCH_METHODS.join(', ')})` })
      .option('calib', { type: 'string', describe: 'quant --model: calibration text (default ../shared/data/tinystories/calib.txt)' })
      .option('dtype', { type: 'string', choices: RANDOM_MODEL_DTYPES, describe: 'quant --model <preset>: float32 (default) or float16 weights' }) as never,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      applyThreads(args.threads);
      if (args.dtype !== undefined && !(args.target === 'quant' && args.model !== undefined)) throw new UsageError('--dtype goes with bench quant --model <preset>');
      const json: Record<string, unknown> = {};
      if (args.target === 'cpu' || args.target === 'all') json.cpu = await benchCpu(args, ctx);
      if (args.target === 'quant' || args.target === 'all') json.quant = await benchQuant(args, ctx);
      if (args.target === 'e2e') json.e2e = await benchE2e(args, ctx);
      if (ctx.json) ctx.out(JSON.stringify(args.target === 'all' ? json : (json.cpu ?? json.quant ?? json.e2e)));
    }),
};

async function benchQuant(args: BenchArgs, ctx: CommandContext): Promise<unknown> {
  const int = (flag: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new UsageError(`--${flag} must be an integer in ${min}..${max}, got ${v}`);
    return v;
  };
  const tokens = int('tokens', args.tokens, 16, 1 << 20);
  if (args.model !== undefined) return benchQuantModel(args, ctx, tokens);
  const awqRows = int('awq-rows', args['awq-rows'], 16, tokens);
  const hidden = int('hidden', args.hidden, 128, 65536);
  const intermediate = int('intermediate', args.intermediate, 128, 65536);
  if (hidden % 128 !== 0 || intermediate % 128 !== 0) throw new UsageError(`--hidden and --intermediate must be multiples of the group size 128, got ${hidden} and ${intermediate}`);
  const aformats: BenchActFormat[] = args.aformat === 'both' ? ['int8', 'none'] : [args.aformat];
  const report = await runQuantBench({ tokens, awqRows, aformats, hidden, intermediate, progress: ctx.progress, cancel: ctx.cancel });
  const command = `w4a8 ${process.argv.slice(2).join(' ')}`;
  if (!ctx.json) {
    ctx.out(`CPU: ${report.cpu}; ${report.threads} quantization threads; ${report.tokens} tokens, AWQ on ${report.awqRows} rows\n`);
    ctx.out(quantBenchTable(report));
  }
  return { ...report, command };
}

/** `bench quant --model`: whole-model quantization, one child process per method (wall time, peak RSS). */
async function benchQuantModel(args: BenchArgs, ctx: CommandContext, calibTokens: number): Promise<unknown> {
  const methods = String(args.methods).split(',').map((m) => m.trim());
  for (const m of methods) {
    if (!(MODEL_BENCH_METHODS as readonly string[]).includes(m)) throw new UsageError(`--methods: "${m}" is not one of ${MODEL_BENCH_METHODS.join(', ')}`);
  }
  const layers = args.layers === undefined ? undefined : integerOption('layers', args.layers, 1, 1024);
  const calib = args.calib ?? path.join(sharedDir(), 'data', 'tinystories', 'calib.txt');
  const report = await runModelQuantBench({
    model: args.model!, layers, dtype: args.dtype, methods: methods as ModelBenchMethod[], calib, calibTokens, threads: args.threads ?? numThreads(), progress: ctx.progress, cancel: ctx.cancel,
  });
  const command = `w4a8 ${process.argv.slice(2).join(' ')}`;
  if (!ctx.json) {
    ctx.out(`CPU: ${report.cpu}; ${report.threads} threads; model ${report.model}, ${report.inputMb} MB on disk\n`);
    ctx.out(modelQuantBenchTable(report));
  }
  return { ...report, command };
}

async function benchCpu(args: BenchArgs, ctx: CommandContext): Promise<unknown> {
  const shapes = parseShapes(args.shapes ?? (args.quick ? QUICK_SHAPES : DEFAULT_SHAPES));
  const ms = parseTokenCounts(args.m ?? (args.quick ? QUICK_MS : DEFAULT_MS));
  const rounds = args.rounds ?? (args.quick ? 3 : 7);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000) throw new UsageError(`--rounds must be an integer in 1..1000, got ${rounds}`);
  const threads = args.threads ?? numThreads();
  if (threads > MAX_THREADS) throw new UsageError(`--threads must be an integer in 1..${MAX_THREADS}, got ${threads}`);
  const setMb = args['set-mb'];
  // Each variant holds its set (ONNX Runtime about twice, prepacked): ~9x the set in all.
  if (!(setMb >= 1 && setMb <= 1300)) throw new UsageError(`--set-mb must be in 1..1300 (keeps the run under ~12 GB of memory), got ${setMb}`);
  if (setMb < 1024) ctx.progress.log(`--set-mb ${setMb} < 1024: M=1 timings may come from cache, not DRAM`, 'warn');
  const batchMs = args['batch-ms'];
  if (!(batchMs > 0 && batchMs <= 10000)) throw new UsageError(`--batch-ms must be in (0, 10000], got ${batchMs}`);

  if (cpuIsaOverrideIgnored()) ctx.progress.log(`W4A8_ISA=${process.env.W4A8_ISA} is not available on this CPU; using the best ISA instead`, 'warn');
  const report = await runCpuBench({
    shapes, ms, rounds, threads, setBytes: setMb * 2 ** 20, batchMs, scalarMaxM: 8, ortSpinning: args['ort-spinning'] === 'on', progress: ctx.progress, cancel: ctx.cancel,
  });
  const command = `w4a8 ${process.argv.slice(2).join(' ')}`;
  if (!ctx.json) {
    ctx.out(`CPU: ${report.cpu}; threads ${report.threads}; default ISA ${report.isa}; rotation set ${Math.round(report.setBytes / 2 ** 20)} MiB per variant\n`);
    ctx.out(`${emptyCallLine(report)}\n`);
    ctx.out(cpuBenchTable(report));
  }
  return { ...report, command };
}
