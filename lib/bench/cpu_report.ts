// Human output of `w4a8 bench cpu`: a markdown table, and the CPU section of docs/BENCHMARKS.md.
import { writeMarkdownSection } from '../util/markdown_section';
import { BASELINE_VARIANT, type CpuBenchReport, type CpuBenchResult } from './cpu';

const SECTION = '## CPU kernels';

function throughput(r: CpuBenchResult): string {
  // M=1 is bandwidth-bound: weight bytes per second; larger M is compute: 2*M*N*K ops per second.
  if (r.m === 1) return `${(r.weightBytes / (r.medianMs * 1e6)).toFixed(1)} GB/s`;
  return `${((2 * r.m * r.n * r.k) / (r.medianMs * 1e9)).toFixed(3)} TOPS`;
}

function fmtMs(v: number): string {
  return v >= 100 ? v.toFixed(1) : v >= 10 ? v.toFixed(2) : v.toFixed(3);
}

/** One markdown table: rows per (shape, M, variant) with the speedup over ONNX Runtime bs128 acc4. */
export function cpuBenchTable(report: CpuBenchReport): string {
  const lines = [
    '| K x N | M | variant | median ms | min ms | max ms | throughput | rel. error | vs ort-nbits-bs128-acc4 |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of report.results) {
    const base = report.results.find((b) => b.variant === BASELINE_VARIANT && b.m === r.m && b.n === r.n && b.k === r.k);
    const speedup = base ? `${(base.medianMs / r.medianMs).toFixed(2)}x` : 'n/a';
    lines.push(`| ${r.k} x ${r.n} | ${r.m} | ${r.variant} | ${fmtMs(r.medianMs)} | ${fmtMs(r.minMs)} | ${fmtMs(r.maxMs)} | ${throughput(r)} | ${r.relErr.toExponential(2)} | ${speedup} |`);
  }
  return lines.join('\n');
}

/**
 * The targets, computed from this run (K = N = 4096, ours vs ort-nbits-bs128-acc4): M=1 at
 * least 1.3x, M=128 and M=512 at least 5x, relative error no larger. Each line says met or by how much not.
 */
export function cpuTargetLines(report: CpuBenchReport): string[] {
  const find = (variant: string, m: number) => report.results.find((r) => r.variant === variant && r.m === m && r.k === 4096 && r.n === 4096);
  const lines: string[] = [];
  for (const [m, goal] of [[1, 1.3], [128, 5], [512, 5]] as const) {
    const ours = find('w4a8', m);
    const base = find(BASELINE_VARIANT, m);
    if (!ours || !base) continue;
    const speedup = base.medianMs / ours.medianMs;
    const verdict = speedup >= goal ? 'met' : `missed by ${((1 - speedup / goal) * 100).toFixed(0)} % (${speedup.toFixed(2)}x of ${goal}x)`;
    const errVerdict = ours.relErr <= base.relErr * (1 + 1e-3) ? 'no larger' : 'LARGER';
    lines.push(`- M=${m}, 4096 x 4096: w4a8 ${speedup.toFixed(2)}x ort-nbits-bs128-acc4 (target >= ${goal}x): ${verdict}; rel. error ${ours.relErr.toExponential(2)} vs ${base.relErr.toExponential(2)}: ${errVerdict}.`);
  }
  return lines;
}

export interface DocsContext {
  command: string;
  date: Date;
}

/** The whole "## CPU kernels" section (heading included). */
export function cpuBenchSection(report: CpuBenchReport, ctx: DocsContext): string {
  const setMiB = Math.round(report.setBytes / 2 ** 20);
  return [
    SECTION,
    '',
    `Measured ${ctx.date.toISOString().slice(0, 10)} on ${report.cpu} (${report.threads} threads, default ISA ${report.isa}; 1-minute load average`,
    `${report.loadAvg[0].toFixed(1)} before, ${report.loadAvg[1].toFixed(1)} after: above ~${report.threads} the machine was shared and the numbers are noisy) with:`,
    '',
    '```',
    ctx.command,
    '```',
    '',
    `- Every variant rotates through its own set of distinct weight matrices of at least ${setMiB} MiB in total, one matrix per call,`,
    '  so M=1 measures DRAM streaming, not cache. ONNX Runtime (onnxruntime-node, CPU EP) gets one single-node session per matrix,',
    `  intraOpNumThreads = ${report.threads}, intra-op spinning off (hundreds of sessions' spinning pools would fight for the cores;`,
    '  on the 2-vCPU machine spinning made even one hot MatMulNBits session ~8x slower, so this favours ORT).',
    '- `w4a8` and `ort-nbits-bs128-acc4` multiply the SAME int4 g128 asymmetric weights; `ort-fp32` is a MatMul on their exact',
    '  dequantization; `ort-nbits-bs32-acc4` and `w4a8-fp4` use random weights of their own format. `w4a8-<isa>` forces one ISA path',
    '  on the `w4a8` weights (`w4a8` itself is the default ISA). Activations: int8 per token and K-group, inside the call.',
    '- A sample is the mean of a batch of calls lasting ~20 ms; rounds visit the variants in rotating order; median/min/max are over',
    '  rounds. Ours is timed through the synchronous binding, ONNX Runtime through `await session.run()`.',
    '- Throughput: weight GB/s at M=1 (4-bit codes + scales + zero points; fp32 for `ort-fp32`), else 2*M*N*K ops/s.',
    '- rel. error: ||y - y64|| / ||y64|| on the first min(M, 4) tokens, y64 = x times the exactly dequantized weight in float64.',
    '',
    'Targets (issue 4), from this run:',
    '',
    ...cpuTargetLines(report),
    '',
    cpuBenchTable(report),
    '',
  ].join('\n');
}

/** Replaces (or appends) the CPU section of a markdown file, atomically; other sections stay as they are. */
export function writeCpuSection(file: string, section: string): void {
  writeMarkdownSection(file, SECTION, section);
}
