// The sweep as a markdown table: one row per configuration, sorted as run, ppl and the change
// against the unquantized baseline.
import type { SweepReport, SweepRow } from './sweep_result';

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

function cells(r: SweepRow): string[] {
  const c = r.config;
  const weights = c ? (c.wformat === 'fp4' ? 'fp4' : `int4 ${c.symmetric ? 'sym' : 'asym'}`) : 'fp32';
  const group = c ? (c.groupSize === 0 ? 'per-channel' : String(c.groupSize)) : '-';
  const acts = c ? (c.aformat === 'none' ? 'none (A16)' : c.aformat) : '-';
  const delta = r.config ? `${r.deltaPct >= 0 ? '+' : ''}${fmt(r.deltaPct, 2)}%` : '-';
  return [
    c ? c.method + (c.actOrder ? ' act-order' : '') + (c.clipSearch ? ' clip-search' : '') + (c.compensate ? ` +${c.compensate} ${c.compensateBudget !== undefined ? `${+(c.compensateBudget * 100).toFixed(2)}%` : `r${c.compensateRank}`}` : '') : 'none',
    weights,
    group,
    c ? c.grouping : '-',
    acts,
    r.exportFormat,
    fmt(r.ppl, 4),
    delta,
  ];
}

/** A markdown table of the rows (no heading above it). */
export function sweepTable(rows: SweepRow[]): string {
  const head = ['method', 'weights', 'group', 'grouping', 'activations', 'export', 'ppl', 'vs fp32'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i >= 6 ? '---:' : '---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${cells(r).join(' | ')} |`);
  return lines.join('\n') + '\n';
}

/** A self-contained markdown section: the setting, then the table. */
export function sweepToMarkdown(report: SweepReport, title = 'Quantization sweep'): string {
  const parts = [
    `## ${title}`,
    '',
    `Model \`${report.model}\`; perplexity on the first ${report.maxTokens} tokens of \`${report.evalText}\` ` +
      `(ctx ${report.ctx}, non-overlapping windows); calibration: ${report.calibTokens} tokens of \`${report.calibText}\` ` +
      `in windows of ${report.calibSeqlen}.`,
    '',
    sweepTable([report.baseline, ...report.rows]),
  ];
  return parts.join('\n');
}
