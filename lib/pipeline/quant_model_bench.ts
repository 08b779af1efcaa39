// `w4a8 bench quant --model <preset|model.onnx>`: quantizes a whole model end to end once per method
// (the same `quantizeModel` the quantize command runs: int4 g128 asymmetric, default options otherwise:
// int8 activations, MatMulNBits export, sequential calibration where quantize picks it) and reports
// each run's wall time and peak RSS. Each method runs in its own child process, so its peak RSS
// (VmHWM of that process) is its own and not the largest of the runs before it; the child's progress
// lines come through. Then the child runs the quantized model in ONNX Runtime (a short greedy
// generation, after the peak is read) to show the result works. A preset is generated first (random
// weights, fp32 or fp16, lib/import/llama2c_random.ts) into a temporary folder that is removed at
// the end, with the outputs.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { importRandomLlama, RANDOM_PRESETS, type RandomModelDtype } from '../import/llama2c_random';
import { numThreads } from '../native/kernels';
import { type CancelToken, neverCancelled } from '../util/cancel';
import { UsageError } from '../util/errors';
import { runJsonChild } from '../util/json_child';
import { type Progress, silentProgress } from '../util/progress';
import { cpuModel } from '../bench/cpu';

export const MODEL_BENCH_METHODS = ['rtn', 'awq', 'gptq'] as const;
/** int4 groups of 128 along K, as the common 4-bit LLaMA releases (and the target) use. */
export const MODEL_BENCH_GROUP = 128;
export type ModelBenchMethod = (typeof MODEL_BENCH_METHODS)[number];

export interface ModelBenchOptions {
  /** A random preset (RANDOM_PRESETS) or a float ONNX model path. */
  model: string;
  /** Presets: override the layer count. */
  layers?: number;
  /** Presets: float32 (default) or float16 weights. */
  dtype?: RandomModelDtype;
  methods: ModelBenchMethod[];
  /** Calibration text (AWQ, GPTQ). */
  calib: string;
  calibTokens: number;
  threads: number;
  /** Parent of the temporary folder (default os.tmpdir()). */
  tmpDir?: string;
  progress?: Progress;
  cancel?: CancelToken;
}

export interface ModelBenchRow {
  method: ModelBenchMethod;
  wallSeconds: number;
  /** Peak resident memory of the child process that quantized (its VmHWM). */
  peakRssMb: number;
  /** How the calibration ran ('sequential' or 'all'; absent for RTN). */
  calibMode?: string;
  calibTokens: number;
  layers: number;
  /** Output model + side file. */
  outputMb: number;
  /** The quantized model in ONNX Runtime: tokens of a short greedy generation and its wall time. */
  ortCheck: { newTokens: number; seconds: number };
}

export interface ModelBenchReport {
  cpu: string;
  threads: number;
  model: string;
  /** Float model size on disk (model + side files). */
  inputMb: number;
  loadAvg: [number, number];
  rows: ModelBenchRow[];
}

function folderMb(dir: string): number {
  let total = 0;
  for (const f of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, f));
    if (st.isFile()) total += st.size;
  }
  return total / 2 ** 20;
}

/** The check's prompt and length: enough to run prefill and a few cached decode steps. */
const CHECK_PROMPT = 'Once upon a time';
const CHECK_NEW_TOKENS = 4;

interface ChildResult {
  summary: { calibMode?: string; calibTokens: number; layers: unknown[] };
  maxRssKb: number;
  check: { newTokens: number; seconds: number };
}

/** Runs quantizeModel in a child process, then the output in ORT; resolves with its summary, peak RSS and the check. */
async function quantizeInChild(args: Record<string, unknown>, threads: number, cancel: CancelToken, onLine: (line: string) => void): Promise<{ summary: ChildResult['summary']; peakRssMb: number; check: ChildResult['check'] }> {
  // The built modules (also when this one runs from the TypeScript sources, as in the tests).
  const dist = path.resolve(__dirname, '..', '..', 'dist');
  const script = `
    const { quantizeModel } = require(${JSON.stringify(path.join(dist, 'pipeline', 'quantize.js'))});
    const { generateGreedy } = require(${JSON.stringify(path.join(dist, 'eval', 'generate.js'))});
    const { setNumThreads } = require(${JSON.stringify(path.join(dist, 'native', 'kernels.js'))});
    const { createProgress } = require(${JSON.stringify(path.join(dist, 'util', 'progress.js'))});
    setNumThreads(${threads});
    const progress = createProgress('lines', process.stderr);
    (async () => {
      const s = await quantizeModel({ ...${JSON.stringify(args)}, progress });
      // VmHWM of this process, read before the check: getrusage's maxrss would include the parent's RSS at the fork.
      const hwm = /^VmHWM:\\s+(\\d+) kB/m.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'));
      const t0 = Date.now();
      const g = await generateGreedy({ modelPath: ${JSON.stringify(args.output)}, prompt: ${JSON.stringify(CHECK_PROMPT)}, maxNewTokens: ${CHECK_NEW_TOKENS} });
      const check = { newTokens: g.newTokens, seconds: (Date.now() - t0) / 1000 };
      process.stdout.write(JSON.stringify({ summary: { calibMode: s.calibMode, calibTokens: s.calibTokens, layers: s.layers }, maxRssKb: hwm ? Number(hwm[1]) : NaN, check }));
    })().catch((e) => { process.stderr.write(String(e && e.message || e)); process.exit(1); });`;
  const r = await runJsonChild<ChildResult>(script, 'quantizing in the child process', cancel, onLine);
  return { summary: r.summary, peakRssMb: r.maxRssKb / 1024, check: r.check };
}

export async function runModelQuantBench(o: ModelBenchOptions): Promise<ModelBenchReport> {
  const progress = o.progress ?? silentProgress;
  const cancel = o.cancel ?? neverCancelled;
  if (!Array.isArray(o.methods) || o.methods.length === 0 || o.methods.some((m) => !(MODEL_BENCH_METHODS as readonly string[]).includes(m))) {
    throw new RangeError(`Expected methods to be a non-empty list of ${MODEL_BENCH_METHODS.join(', ')} but received ${JSON.stringify(o.methods)}`);
  }
  if (o.methods.some((m) => m !== 'rtn') && !fs.existsSync(o.calib)) throw new UsageError(`calibration text ${o.calib} not found (give --calib)`);
  const loadBefore = os.loadavg()[0];
  const dir = fs.mkdtempSync(path.join(o.tmpDir ?? os.tmpdir(), 'w4a8-bench-quant-'));
  try {
    let input: string;
    let label: string;
    if (Object.prototype.hasOwnProperty.call(RANDOM_PRESETS, o.model)) {
      progress.log(`bench quant: generating ${o.model} in ${dir} (removed at the end)`);
      const r = await importRandomLlama(o.model, path.join(dir, 'float'), { layers: o.layers, dtype: o.dtype, progress });
      input = r.modelPath;
      label = `${o.model} (random weights, ${r.dtype}, ${r.config.nLayers} layers)`;
    } else {
      if (o.dtype !== undefined) throw new UsageError(`--dtype applies to the random presets (${Object.keys(RANDOM_PRESETS).join(', ')}), not to ${o.model}`);
      if (o.layers !== undefined) throw new UsageError(`--layers applies to the random presets (${Object.keys(RANDOM_PRESETS).join(', ')}), not to ${o.model}`);
      if (!fs.existsSync(o.model)) throw new UsageError(`--model ${o.model} is neither a preset (${Object.keys(RANDOM_PRESETS).join(', ')}) nor an existing file`);
      input = o.model;
      label = path.basename(o.model);
    }
    const inputMb = folderMb(path.dirname(input));
    const rows: ModelBenchRow[] = [];
    progress.start('quantize', o.methods.length);
    for (const [i, method] of o.methods.entries()) {
      cancel.throwIfCancelled();
      const outDir = path.join(dir, `out-${method}`);
      const started = Date.now();
      const { summary, peakRssMb, check } = await quantizeInChild(
        { input, output: path.join(outDir, 'model.onnx'), method, groupSize: MODEL_BENCH_GROUP, ...(method === 'rtn' ? {} : { calib: o.calib, calibTokens: o.calibTokens }) },
        o.threads,
        cancel,
        (line) => progress.log(`${method}: ${line}`),
      );
      const wallSeconds = (Date.now() - started) / 1000;
      rows.push({
        method, wallSeconds, peakRssMb: Math.round(peakRssMb), calibTokens: summary.calibTokens, layers: summary.layers.length,
        outputMb: Math.round(folderMb(outDir)), ortCheck: check, ...(summary.calibMode ? { calibMode: summary.calibMode } : {}),
      });
      fs.rmSync(outDir, { recursive: true, force: true });
      progress.update(i + 1, `${method} ${wallSeconds.toFixed(0)} s, peak RSS ${Math.round(peakRssMb)} MB`);
    }
    progress.stop();
    return { cpu: cpuModel(), threads: o.threads ?? numThreads(), model: label, inputMb: Math.round(inputMb), loadAvg: [loadBefore, os.loadavg()[0]], rows };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The report as a markdown table. */
export function modelQuantBenchTable(report: ModelBenchReport): string {
  const lines = ['| method | calibration | layers | wall | peak RSS MB | output MB | runs in ORT |', '|---|---|---|---|---|---|---|'];
  for (const r of report.rows) {
    const calib = r.calibMode ? `${r.calibMode}, ${r.calibTokens} tokens` : 'none';
    const m = Math.floor(r.wallSeconds / 60), s = Math.round(r.wallSeconds % 60);
    const check = `${r.ortCheck.newTokens} tokens in ${r.ortCheck.seconds.toFixed(1)} s`;
    lines.push(`| ${r.method} | ${calib} | ${r.layers} | ${m}:${String(s).padStart(2, '0')} | ${r.peakRssMb} | ${r.outputMb} | ${check} |`);
  }
  return lines.join('\n');
}
