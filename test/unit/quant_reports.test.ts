// Sweep reports: the markdown table, the SVG chart and the QUALITY document's verdicts.
import * as path from 'node:path';
import { bestMethod, qualityDoc, shownPath } from '../../lib/pipeline/report_quality';
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
  it('states each target plainly, met or not', () => {
    expect(bestMethod(report.rows)).toBe('gptq');
    const doc = qualityDoc(report);
    expect(doc).toMatch(/Best int4 g32 A16 within 5% of fp32: gptq int4-asym g32 A16, ppl 5.0000 \(\+4.17%\): met/);
    expect(doc).toMatch(/Best W4A8 within 7% of fp32: gptq int4-asym g32 A8 int8, ppl 5.0100 \(\+4.37%\): met/);
    expect(doc).toMatch(/AWQ better than RTN .*: 0 of 1 configurations; not better: awq int4-asym g32 A16 \(5.2000 vs RTN 5.1700\): \*\*not met\*\*/);
    expect(doc).toMatch(/GPTQ better than RTN .*: 2 of 2 configurations: met/);
    expect(doc).toMatch(/\| RTN int4 g32 asym, A16 \| 5.1690 \| 5.1700 \| \+0.0010 \|/);
    expect(doc).toMatch(/\| RTN int4 g32 sym, A16 \| 5.6380 \| not run \| - \|/);
  });

  it('shows the texts relative to the working folder in the reproduce commands (../shared in a clone)', () => {
    const calib = path.resolve(process.cwd(), '..', 'shared', 'data', 'tinystories', 'calib.txt');
    const evalText = path.resolve(process.cwd(), '..', 'shared', 'data', 'tinystories', 'eval-dev.txt');
    expect(shownPath(calib)).toBe(path.join('..', 'shared', 'data', 'tinystories', 'calib.txt'));
    expect(shownPath('rel/x.txt')).toBe('rel/x.txt');
    const doc = qualityDoc({ ...report, calibText: calib, evalText });
    expect(doc).toContain('--calib ../shared/data/tinystories/calib.txt --eval ../shared/data/tinystories/eval-dev.txt');
    expect(doc).toContain('w4a8 import llama2c ../shared/models/stories260K/stories260K.bin');
    expect(doc).not.toContain(path.dirname(calib));
  });
});
