// Human output of `w4a8 bench quant`: markdown tables (scripts/docs/bench_doc.js puts them in docs/BENCHMARKS.md).
import type { QuantBenchReport, QuantBenchRow } from './quant';

function stepLabel(r: QuantBenchRow): string {
  if (r.step === 'calib-stats') return 'calibration statistics (Hessian + sample)';
  if (r.step === 'awq') return r.aformat === 'int8' ? 'awq (int8 activations, W4A8 kernels)' : 'awq (float activations)';
  return r.step;
}

function shape(r: QuantBenchRow): string {
  return r.step === 'calib-stats' ? `K ${r.k}` : `${r.k} x ${r.n}`;
}

/** Totals per step, then the per-layer breakdown. */
export function quantBenchTable(report: QuantBenchReport): string {
  const lines = ['| step | wall s | CPU s | CPU / wall |', '|---|---|---|---|'];
  for (const t of report.totals) {
    lines.push(`| ${stepLabel(t)} | ${t.wallSeconds.toFixed(2)} | ${t.cpuSeconds.toFixed(2)} | ${(t.cpuSeconds / Math.max(t.wallSeconds, 1e-9)).toFixed(2)} |`);
  }
  lines.push('', '| step | layers (or activation) | K x N | wall s | CPU s |', '|---|---|---|---|---|');
  for (const r of report.rows) {
    lines.push(`| ${stepLabel(r)} | ${r.target} | ${shape(r)} | ${r.wallSeconds.toFixed(2)} | ${r.cpuSeconds.toFixed(2)} |`);
  }
  return lines.join('\n');
}
