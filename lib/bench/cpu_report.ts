// Human output of `w4a8 bench cpu`: one markdown table (scripts/docs/bench_doc.js puts it in docs/BENCHMARKS.md).
import { BASELINE_VARIANT, type CpuBenchReport, type CpuBenchResult } from './cpu';

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

/** One line: the fixed cost of each kind of call, next to which the M=1 times should be read. */
export function emptyCallLine(report: CpuBenchReport): string {
  const e = report.emptyCallUs;
  return `Empty-call cost (128 x 16 matrix, M=1, median us): ours \`await gemmW4A8\` ${e.oursAsync.toFixed(1)} ` +
    `(on the libuv pool: ${e.oursPool.toFixed(1)}), ` +
    `ours synchronous ${e.oursSync.toFixed(1)}; ONNX Runtime \`await run\` with preallocated output ${e.ort.toFixed(1)}, ` +
    `allocating ${e.ortAlloc.toFixed(1)}. ORT intra-op spinning ${report.ortSpinning ? 'on' : 'off'}.`;
}
