// Human output of `w4a8 bench quant`: markdown tables and the "## Quantization time" section of
// docs/BENCHMARKS.md (replaced in place; the other sections are left as they are).
import { writeMarkdownSection } from '../util/markdown_section';
import type { QuantBenchReport, QuantBenchRow } from './quant';

export const QUANT_SECTION = '## Quantization time';

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

export interface QuantDocsContext {
  command: string;
  date: Date;
}

/** The whole section, heading included. */
export function quantBenchSection(report: QuantBenchReport, ctx: QuantDocsContext): string {
  return [
    QUANT_SECTION,
    '',
    `Measured ${ctx.date.toISOString().slice(0, 10)} on ${report.cpu} (${report.threads} quantization threads; 1-minute load average`,
    `${report.loadAvg[0].toFixed(1)} before, ${report.loadAvg[1].toFixed(1)} after: above ~${report.threads} the machine was shared and the numbers are noisy) with:`,
    '',
    '```',
    ctx.command,
    '```',
    '',
    `- The seven linear layers of one LLaMA-7B decoder layer (hidden ${report.hidden}, MLP ${report.intermediate}): q, k, v, o`,
    `  ${report.hidden}x${report.hidden}; gate, up K=${report.hidden}, N=${report.intermediate}; down K=${report.intermediate}, N=${report.hidden}. int4, group 128 along K, asymmetric.`,
    '- Synthetic and seeded, generated natively (not timed): weights normal(0, 0.02); activations (A kron B) z with z normal',
    '  (correlated channels) plus four outlier channels ~20x larger. q, k, v share one activation, gate and up another.',
    `- calibration statistics: ${report.tokens} tokens per activation through createCalibStats (mean/max |x|, the float64`,
    `  Hessian X^T X, a ${report.awqRows}-row reservoir sample); GPTQ uses that Hessian, AWQ that sample.`,
    `- AWQ searches on ${report.awqRows} rows, not all ${report.tokens}: its cost grows linearly with rows (each of ~50 candidates`,
    '  computes every layer\'s output on the sample), and all tokens would not fit a ~5-minute run on 2 cores.',
    '  Both rows are timed: `--aformat int8` scores the candidates with the CPU W4A8 kernels (int8 activations per token and',
    '  K-group, as `w4a8 quantize --aformat int8 --format matmulnbits` does), `--aformat none` with float activations.',
    '- Times through the TypeScript wrappers (lib/native/quant.ts), i.e. what `w4a8 quantize` users wait for; CPU seconds from',
    '  process.cpuUsage (all threads of the process). CPU / wall near 1 on this 2-core machine means one core did the work',
    '  (a single-threaded step, or the other core busy: see the load average).',
    `- The timed steps add up to ${report.totals.reduce((t, r) => t + r.wallSeconds, 0).toFixed(0)} s of wall time.`,
    '',
    quantBenchTable(report),
    '',
  ].join('\n');
}

/** Replaces (or appends) the section in a markdown file, atomically. */
export function writeQuantSection(file: string, section: string): void {
  writeMarkdownSection(file, QUANT_SECTION, section);
}
