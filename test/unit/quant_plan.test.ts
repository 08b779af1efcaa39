// Layer planning on a toy decoder: logits excluded, shared inputs grouped, the AWQ fold target
// found; the capture graph fetches a MatMul input through ONNX Runtime; calibration windows.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { calibrationWindows } from '../../lib/calib/calib_text';
import { withCaptureOutputs } from '../../lib/calib/capture_graph';
import { openDecoder } from '../../lib/ort/session';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, serializeForOrt } from '../../lib/onnx/model';
import { foldTarget, planLayers } from '../../lib/quant/plan';
import { loadTokenizer } from '../../lib/tokenize/load';
import { STORIES_TOKENIZER, writeToyLm } from '../helpers/quant_fixtures';

let dir: string;
let file: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-plan-'));
  file = writeToyLm(dir, { dtype: 'float32', external: false });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('planLayers', () => {
  it('keeps the logits layer, groups q and k, and finds the norm weight to fold into', () => {
    const model = loadModel(file);
    const plan = planLayers(model, []);
    expect(plan.all.map((l) => l.weightName)).toEqual(['q_proj.weight', 'k_proj.weight', 'down_proj.weight', 'lm_head.weight']);
    expect(plan.excluded).toEqual([{ name: 'lm_head/MatMul', reason: 'produces a graph output (logits)' }]);
    expect(plan.groups.map((g) => [g.input, g.layers.map((l) => l.name)])).toEqual([
      ['normed', ['q_proj/MatMul', 'k_proj/MatMul']],
      ['act', ['down_proj/MatMul']],
    ]);
    expect(foldTarget(model, plan.groups[0])?.weight.name).toBe('norm.weight');
    expect(foldTarget(model, plan.groups[1])).toBeUndefined();
  });
  it('applies --exclude globs and can include the logits layer', () => {
    const model = loadModel(file);
    const plan = planLayers(model, ['k_proj*'], false);
    expect(plan.layers.map((l) => l.name)).toEqual(['q_proj/MatMul', 'down_proj/MatMul', 'lm_head/MatMul']);
    // With k excluded, the shared input has a reader outside the group: no fold.
    expect(foldTarget(model, plan.groups[0])).toBeUndefined();
  });
});

describe('capture graph', () => {
  it('exposes a MatMul input as an output that ORT returns', async () => {
    const model = loadModel(file);
    const copy = withCaptureOutputs(model, ['normed', 'act'], () => DataType.FLOAT);
    expect(model.proto.graph!.output.map((o) => o.name)).toEqual(['logits']);
    const { bytes } = serializeForOrt(copy);
    const runner = await openDecoder(bytes);
    try {
      const out = await runner.run([1, 5, 9], ['normed', 'act']);
      expect(out.normed.dims).toEqual([1, 3, 64]);
      expect(out.act.dims).toEqual([1, 3, 64]);
      const v = out.act.data as Float32Array;
      expect(v.some((x) => x !== 0)).toBe(true);
      expect(v.every((x) => Math.abs(x) <= 1)).toBe(true); // tanh output
    } finally {
      await runner.release();
    }
  });
});

describe('calibrationWindows', () => {
  const tok = loadTokenizer(STORIES_TOKENIZER);
  it('cuts the eval-protocol stream into non-overlapping windows up to the token budget', () => {
    const text = 'Once upon a time there was a cat.\n\nThe dog ran home and slept.\n\n' + 'Lily saw a big red ball. '.repeat(40);
    const full = calibrationWindows(text, 't', tok, 16, 1e6);
    expect(full.warning).toMatch(/gives \d+ tokens, fewer than --calib-tokens 1000000/);
    const cut = calibrationWindows(text, 't', tok, 16, 40);
    expect(cut.tokens).toBe(40);
    expect(cut.windows.map((w) => w.length)).toEqual([16, 16, 8]);
    expect(cut.windows.flat()).toEqual(full.windows.flat().slice(0, 40));
    expect(cut.windows[0][0]).toBe(1); // BOS opens the first document
  });
  it('refuses an empty text', () => {
    expect(() => calibrationWindows('  \n\n ', 'empty.txt', tok, 16, 100)).toThrow(/empty.txt gives no tokens/);
  });
});
