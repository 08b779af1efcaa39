// Calibration capture: the statistics do not depend on how targets are split into passes
// (a tiny budget forces one pass per target), and they describe the real activations.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { calibrationWindows } from '../../lib/calib/calib_text';
import { captureStatistics, planPasses } from '../../lib/calib/capture';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel } from '../../lib/onnx/model';
import { loadTokenizer } from '../../lib/tokenize/load';
import { CALIB_TEXT, STORIES_TOKENIZER, writeToyLm } from '../helpers/quant_fixtures';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-capture-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('planPasses', () => {
  it('packs targets into passes under the byte budget', () => {
    const t = (k: number) => ({ input: `x${k}`, k, dataType: DataType.FLOAT });
    const targets = [t(64), t(64), t(128)];
    // per target: K*K*8 + 16*K*4 + 8*K*4
    const bytes = (k: number) => k * k * 8 + 16 * k * 4 + 8 * k * 4;
    expect(planPasses(targets, true, 16, 8, 1 << 30).map((p) => p.length)).toEqual([3]);
    expect(planPasses(targets, true, 16, 8, bytes(64) * 2).map((p) => p.map((x) => x.input))).toEqual([['x64', 'x64'], ['x128']]);
    expect(planPasses(targets, true, 16, 8, 1).map((p) => p.length)).toEqual([1, 1, 1]);
  });
});

describe('captureStatistics', () => {
  it.each(['float32', 'float16'] as const)('gives the same %s statistics in one pass or one pass per target', async (dtype) => {
    const file = writeToyLm(path.join(dir, dtype), { dtype, external: dtype === 'float16' });
    const model = loadModel(file);
    const cw = calibrationWindows(fs.readFileSync(CALIB_TEXT, 'utf8'), 'calib', loadTokenizer(STORIES_TOKENIZER), 64, 512);
    expect(cw.windows).toHaveLength(8);
    const type = dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
    const targets = [
      { input: 'normed', k: 64, dataType: type },
      { input: 'act', k: 64, dataType: type },
    ];
    const one = await captureStatistics(model, targets, cw.windows, { hessian: true, sampleRows: 100 });
    const many = await captureStatistics(model, targets, cw.windows, { hessian: true, sampleRows: 100, budgetBytes: 1 });
    for (const name of ['normed', 'act']) {
      const a = one.get(name)!;
      const b = many.get(name)!;
      expect(a.rows).toBe(512);
      expect(a.sampleRows).toBe(100);
      expect(Array.from(b.meanAbs)).toEqual(Array.from(a.meanAbs));
      expect(Array.from(b.hessian!)).toEqual(Array.from(a.hessian!));
      expect(Array.from(b.sample)).toEqual(Array.from(a.sample));
      expect(a.meanAbs.some((v) => v > 0)).toBe(true);
    }
    // tanh output: |x| <= 1
    expect(Math.max(...one.get('act')!.maxAbs)).toBeLessThanOrEqual(1);
  });
});
