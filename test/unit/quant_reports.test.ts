// Sweep reports: the markdown table and the SVG chart.
import { sweepTable, sweepToMarkdown } from '../../lib/pipeline/report_markdown';
import { sweepToSvg } from '../../lib/pipeline/report_svg';
import type { SweepReport, SweepRow } from '../../lib/pipeline/sweep_result';
import { configLabel, resolveConfig, type QuantConfig } from '../../lib/quant/config';

function row(partial: Partial<QuantConfig>, ppl: number, base = 4.8, format: SweepRow['exportFormat'] = 'sim'): SweepRow {
  const config = resolveConfig(partial);
  return { label: configLabel(config), config, exportFormat: format, ppl, nll: Math.log(ppl), tokens: 100, deltaPct: (ppl / base - 1) * 100, quantizeSeconds: 0.1, evalSeconds: 0.2 };
}

const baseline: SweepRow = { label: 'fp32', exportFormat: 'original', ppl: 4.8, nll: Math.log(4.8), tokens: 100, deltaPct: 0, quantizeSeconds: 0, evalSeconds: 0.2 };
const report: SweepReport = {
  model: 'm.onnx',
  calibText: 'calib.txt',
  evalText: 'eval.txt',
  ctx: 512,
  maxTokens: 100,
  calibTokens: 8192,
  calibSeqlen: 512,
  createdAt: '2026-11-27T00:00:00.000Z',
  baseline,
  rows: [
    row({ method: 'rtn', aformat: 'none' }, 5.17),
    row({ method: 'awq', aformat: 'none' }, 5.2),
    row({ method: 'gptq', aformat: 'none' }, 5.0),
    row({ method: 'rtn', aformat: 'int8' }, 5.18),
    row({ method: 'gptq', aformat: 'int8' }, 5.01),
    row({ method: 'gptq', aformat: 'int8' }, 5.05, 4.8, 'matmulnbits'),
  ],
};

describe('sweep reports', () => {
  it('writes one markdown row per configuration after the baseline', () => {
    const table = sweepTable([baseline, ...report.rows]).trim().split('\n');
    expect(table).toHaveLength(2 + 7);
    expect(table[2]).toBe('| none | fp32 | - | - | - | original | 4.8000 | - |');
    expect(table[4]).toBe('| awq | int4 asym | 32 | oc | none (A16) | sim | 5.2000 | +8.33% |');
    expect(sweepToMarkdown(report)).toMatch(/first 100 tokens of `eval.txt`/);
  });
  it('draws one bar per row and a baseline line in a standalone SVG', () => {
    const svg = sweepToSvg(report);
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect((svg.match(/<rect /g) ?? []).length).toBe(1 + 7); // background + bars
    expect(svg).toContain('stroke-dasharray');
    expect(svg).toContain('[matmulnbits]');
  });
});
