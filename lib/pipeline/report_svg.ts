// A horizontal bar chart of perplexity per configuration, as a standalone SVG. Our own tiny
// writer: a few rect/text/line elements, no dependency. The fp32 baseline is a vertical line.
import type { SweepReport } from './sweep_result';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Bar colour by activation format: the eye groups A16 / int8 / fp8 rows. */
function colour(aformat: string | undefined): string {
  switch (aformat) {
    case 'none':
      return '#4c78a8';
    case 'int8':
      return '#f58518';
    case 'fp8':
      return '#54a24b';
    default:
      return '#888888';
  }
}

export function sweepToSvg(report: SweepReport, title = 'Perplexity per configuration (lower is better)'): string {
  const rows = [report.baseline, ...report.rows];
  const labelWidth = 330;
  const plotWidth = 480;
  const rowHeight = 16;
  const top = 40;
  const width = labelWidth + plotWidth + 70;
  const height = top + rows.length * rowHeight + 40;
  const finite = rows.map((r) => r.ppl).filter((p) => Number.isFinite(p));
  const max = finite.length > 0 ? Math.max(...finite) : 1;
  // Bars start at 0 so their lengths compare honestly; a zoomed axis would exaggerate small gaps.
  const scale = (v: number) => (Math.min(v, max) / max) * plotWidth;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  out.push(`<text x="${width / 2}" y="32" text-anchor="middle" fill="#555">${esc(`${report.model}, ctx ${report.ctx}, ${report.maxTokens} eval tokens; blue A16, orange A8 int8, green A8 fp8`)}</text>`);
  rows.forEach((r, i) => {
    const y = top + i * rowHeight;
    const w = Number.isFinite(r.ppl) ? scale(r.ppl) : plotWidth;
    out.push(`<text x="${labelWidth - 6}" y="${y + rowHeight - 4}" text-anchor="end">${esc(r.label + (r.exportFormat !== 'sim' && r.exportFormat !== 'original' ? ` [${r.exportFormat}]` : ''))}</text>`);
    out.push(`<rect x="${labelWidth}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowHeight - 4}" fill="${colour(r.config?.aformat)}"/>`);
    out.push(`<text x="${(labelWidth + w + 4).toFixed(1)}" y="${y + rowHeight - 4}">${Number.isFinite(r.ppl) ? r.ppl.toFixed(3) : String(r.ppl)}</text>`);
  });
  const bx = labelWidth + scale(report.baseline.ppl);
  out.push(`<line x1="${bx.toFixed(1)}" y1="${top}" x2="${bx.toFixed(1)}" y2="${top + rows.length * rowHeight}" stroke="black" stroke-dasharray="3,3"/>`);
  const axisY = top + rows.length * rowHeight + 4;
  out.push(`<line x1="${labelWidth}" y1="${axisY}" x2="${labelWidth + plotWidth}" y2="${axisY}" stroke="#333"/>`);
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    const x = labelWidth + scale(v);
    out.push(`<line x1="${x.toFixed(1)}" y1="${axisY}" x2="${x.toFixed(1)}" y2="${axisY + 4}" stroke="#333"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${axisY + 16}" text-anchor="middle">${v.toFixed(2)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
