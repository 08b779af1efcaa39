// The quality doc's next-steps blocks (scripts/docs/quality_doc.js): the compensation rows cover
// awq+gptq, clip search, act-order and every budget on every base; the two targets read met or
// missed from the rows, with the extra-parameter limit respected; the calibration study table.
import * as path from 'node:path';
import { configLabel, resolveConfig, type QuantConfig } from '../../lib/quant/config';
import type { SweepReport, SweepRow } from '../../lib/pipeline/sweep_result';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const quality = require('../../scripts/docs/quality_doc') as {
  qualityCompensation(withPlain?: boolean): { config: QuantConfig; format: string }[];
  qualityCalibrationStudy(): { config: QuantConfig; format: string }[];
  compensationTargets(r: SweepReport, studies?: { tokens: number; report: SweepReport }[]): string;
  compensationBlocks(r: SweepReport, studies: { tokens: number; report: SweepReport }[], command: string): Record<string, string>;
};

const W4A8 = { wformat: 'int4', symmetric: false, groupSize: 32, grouping: 'oc', aformat: 'int8' } as const;

function row(partial: Partial<QuantConfig>, ppl: number, extraParamsPct = 0): SweepRow {
  const config = resolveConfig({ ...W4A8, ...partial });
  return { label: configLabel(config), config, exportFormat: 'sim', ppl, nll: Math.log(ppl), tokens: 100, deltaPct: (ppl / 4.8 - 1) * 100, quantizeSeconds: 1, evalSeconds: 1, bitsPerWeight: 4.643 + 0.16 * extraParamsPct, extraParamsPct };
}

function report(rows: SweepRow[], calibTokens = 8192): SweepReport {
  const baseline: SweepRow = { label: 'fp32', exportFormat: 'original', ppl: 4.8, nll: Math.log(4.8), tokens: 100, deltaPct: 0, quantizeSeconds: 0, evalSeconds: 0.2 };
  return { model: 'build/m.onnx', calibText: path.join('..', 'shared', 'calib.txt'), evalText: 'eval.txt', ctx: 512, maxTokens: 100, calibTokens, calibSeqlen: 512, createdAt: '2026-12-05T00:00:00.000Z', baseline, rows };
}

describe('quality doc: next quality steps', () => {
  test('the compensation list: awq+gptq, clip search, act-order, and 2/5/10 % of both fits on every base', () => {
    const labels = quality.qualityCompensation(true).map((e) => configLabel(e.config));
    expect(new Set(labels).size).toBe(labels.length);
    for (const l of ['awq+gptq int4-asym g32 A8 int8', 'gptq int4-asym g32 A8 int8 clip-search', 'awq+gptq int4-asym g32 A8 int8 clip-search', 'gptq int4-asym g32 A8 int8 act-order', 'awq+gptq int4-asym g32 A8 int8 act-order clip-search']) {
      expect(labels).toContain(l);
    }
    for (const base of ['rtn', 'awq', 'gptq', 'awq+gptq', 'awq+gptq int4-asym g32 A8 int8 clip-search']) {
      for (const fit of ['lorc-aware', 'kron-aware']) {
        for (const b of ['2%', '5%', '10%']) {
          const want = base.includes(' ') ? `${base} +${fit} ${b}` : `${base} int4-asym g32 A8 int8 +${fit} ${b}`;
          expect(labels).toContain(want);
        }
      }
    }
    // Without the plain rows (the main grid has them) awq+gptq's plain row is still there: the grid has no awq+gptq.
    expect(quality.qualityCompensation(false).map((e) => configLabel(e.config))).toContain('awq+gptq int4-asym g32 A8 int8');
  });

  test('targets: the best row within 5 % extra parameters decides the 3 % target; kron vs lorc per base and budget', () => {
    const rows = [
      row({ method: 'gptq' }, 5.0),
      row({ method: 'awq+gptq', clipSearch: true }, 4.96),
      // Within 3 % (4.944) but with more than 5 % extra parameters: it must not count.
      row({ method: 'awq+gptq', clipSearch: true, compensate: 'lorc-aware', compensateBudget: 0.1 }, 4.9, 8.79),
      row({ method: 'rtn', compensate: 'lorc-aware', compensateBudget: 0.05 }, 5.13, 4.11),
      row({ method: 'rtn', compensate: 'kron-aware', compensateBudget: 0.05 }, 5.16, 4.25),
      row({ method: 'awq', compensate: 'lorc-aware', compensateBudget: 0.05 }, 5.06, 4.11),
      row({ method: 'awq', compensate: 'kron-aware', compensateBudget: 0.05 }, 5.05, 4.25),
    ];
    const text = quality.compensationTargets(report(rows));
    expect(text).toMatch(/awq\+gptq int4-asym g32 A8 int8 clip-search, ppl 4\.9600 \(\+3\.33%.*\*\*missed\*\*/);
    expect(text).toMatch(/kron-aware beats lorc-aware .*: 1 of 2 \(RTN 5%: kron-aware 5\.1600 vs lorc-aware 5\.1300 \(\+0\.0300\); AWQ 5%: .*\(-0\.0100\)\): \*\*missed\*\*/);
    const study = report([row({ method: 'awq+gptq', clipSearch: true }, 4.93)], 32768);
    const withStudy = quality.compensationTargets(report(rows), [{ tokens: 32768, report: study }]);
    expect(withStudy).toMatch(/on 32768 tokens, ppl 4\.9300 \(\+2\.71%\): met/);
    const blocks = quality.compensationBlocks(report(rows), [{ tokens: 32768, report: study }], 'npm run quality');
    expect(Object.keys(blocks).sort()).toEqual(['quality-calibration', 'quality-compensation', 'quality-compensation-targets']);
    const table = blocks['quality-calibration'].split('\n');
    expect(table[0]).toBe('| configuration | 8192 tokens | 32768 tokens | mean | vs fp32 (mean) |');
    expect(table.find((l) => l.startsWith('| awq+gptq int4-asym g32 A8 int8 clip-search |'))).toBe('| awq+gptq int4-asym g32 A8 int8 clip-search | 4.9600 | 4.9300 | 4.9450 | +3.02% |');
    expect(quality.qualityCalibrationStudy().length).toBeGreaterThan(3);
  });
});
