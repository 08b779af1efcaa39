// The sim export against direct float checks: its weights equal an independent RTN written from
// the formulas in native/include/w4a8/quant.h, its activation fake-quant subgraph equals the
// native per-token quantizer bit for bit, a whole toy model's logits equal a float forward pass,
// and an all-zero weight group stays exactly zero (no NaN).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { openDecoder } from '../../lib/ort/session';
import { actQuantGraph } from '../../lib/export/act_quant_graph';
import { makeModel, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { initializerMap } from '../../lib/onnx/graph';
import { loadModel, modelBytes } from '../../lib/onnx/model';
import { tensorToFloat32 } from '../../lib/onnx/tensor';
import { fakeQuantActivations } from '../../lib/native/quant';
import { quantizeModel } from '../../lib/pipeline/quantize';
import { rng } from '../helpers/eval_fixtures';
import { CALIB_TEXT, writeToyLm } from '../helpers/quant_fixtures';

const f = Math.fround;
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RTN int4 asymmetric, groups of g along K, of W[K][N] -> dequantized, straight from quant.h. */
function referenceRtnAsym(w: Float32Array, k: number, n: number, g: number): Float32Array {
  const out = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let k0 = 0; k0 < k; k0 += g) {
      let mn = 0;
      let mx = 0;
      for (let i = k0; i < Math.min(k, k0 + g); i++) {
        mn = Math.min(mn, w[i * n + col]);
        mx = Math.max(mx, w[i * n + col]);
      }
      const scale = f(f(mx - mn) / 15);
      const zp = scale === 0 ? 0 : Math.min(15, Math.max(0, roundHalfEven(f(-mn / scale))));
      for (let i = k0; i < Math.min(k, k0 + g); i++) {
        const code = scale === 0 ? zp : Math.min(15, Math.max(0, roundHalfEven(f(w[i * n + col] / scale)) + zp));
        out[i * n + col] = f((code - zp) * scale);
      }
    }
  }
  return out;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-sim-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('sim export', () => {
  it('stores exactly the reference RTN weights and its logits equal a float forward pass', async () => {
    const input = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: false, seed: 11 });
    const out = path.join(dir, 'toy', 'sim.onnx');
    await quantizeModel({ input, output: out, method: 'rtn', groupSize: 32, aformat: 'none', format: 'sim' });
    const src = loadModel(input);
    const q = loadModel(out);
    const srcInits = initializerMap(src);
    const qInits = initializerMap(q);
    const dims: Record<string, [number, number]> = { 'q_proj.weight': [64, 64], 'k_proj.weight': [64, 64], 'down_proj.weight': [64, 128] };
    const W: Record<string, Float32Array> = {};
    for (const [name, [k, n]] of Object.entries(dims)) {
      const expected = referenceRtnAsym(tensorToFloat32(src, srcInits.get(name)!), k, n, 32);
      W[name] = tensorToFloat32(q, qInits.get(name)!);
      expect(Array.from(W[name])).toEqual(Array.from(expected));
    }
    // The logits layer stays as it was.
    expect(Array.from(tensorToFloat32(q, qInits.get('lm_head.weight')!))).toEqual(Array.from(tensorToFloat32(src, srcInits.get('lm_head.weight')!)));

    // Float64 forward pass of the toy graph with the stored weights.
    const E = tensorToFloat32(src, srcInits.get('embed.weight')!);
    const norm = tensorToFloat32(src, srcInits.get('norm.weight')!);
    const head = tensorToFloat32(src, srcInits.get('lm_head.weight')!);
    const ids = [1, 43, 200, 7, 511];
    const runner = await openDecoder(out);
    const logits = (await runner.run(ids, ['logits'])).logits.data as Float32Array;
    await runner.release();
    const matvec = (x: number[], w: Float32Array, k: number, n: number) => {
      const y = new Array<number>(n).fill(0);
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) y[j] += x[i] * w[i * n + j];
      return y;
    };
    let maxRel = 0;
    ids.forEach((id, t) => {
      const h = Array.from({ length: 64 }, (_, i) => E[id * 64 + i] * norm[i]);
      const qv = matvec(h, W['q_proj.weight'], 64, 64);
      const kv = matvec(h, W['k_proj.weight'], 64, 64);
      const a = qv.map((v, i) => Math.tanh(v + kv[i]));
      const d = matvec(a, W['down_proj.weight'], 64, 128);
      const y = matvec(d, head, 128, 512);
      const scale = Math.max(...y.map(Math.abs));
      for (let j = 0; j < 512; j++) maxRel = Math.max(maxRel, Math.abs(logits[t * 512 + j] - y[j]) / scale);
    });
    expect(maxRel).toBeLessThan(1e-5);
  });

  it.each(['int8', 'fp8'] as const)('%s activation subgraph equals the native per-token fake quantization bit for bit', async (aformat) => {
    const m = 7;
    const k = 48;
    const r = rng(5);
    const x = new Float32Array(m * k).map(() => (r() * 2 - 1) * 3);
    x.fill(0, 2 * k, 3 * k); // an all-zero token stays zero
    x[5 * k + 3] = 40; // an outlier token
    const g = actQuantGraph('x', DataType.FLOAT, aformat, 'aq', 21);
    const model = makeModel(
      { name: 'aq', nodes: g.nodes, inputs: [makeValueInfo('x', DataType.FLOAT, [m, k])], outputs: [makeValueInfo(g.output, DataType.FLOAT, [m, k])], initializers: g.initializers },
      [{ domain: '', version: 21 }],
    );
    const session = await ort.InferenceSession.create(modelBytes(model));
    const y = (await session.run({ x: new ort.Tensor('float32', x, [m, k]) }))[g.output].data as Float32Array;
    await session.release();
    const expected = await fakeQuantActivations(x, m, k, aformat);
    expect(Array.from(y)).toEqual(Array.from(expected.values));
    expect(y.slice(2 * k, 3 * k).every((v) => v === 0)).toBe(true);
  });

  it.each([
    ['int4', false],
    ['int4', true],
    ['fp4', true],
  ] as const)('keeps an all-zero %s (symmetric %s) weight group at exact zeros, no NaN', async (wformat, symmetric) => {
    const input = writeToyLm(path.join(dir, `zero-${wformat}-${symmetric}`), { dtype: 'float32', external: false, zeroGroup: true });
    const out = path.join(path.dirname(input), 'sim.onnx');
    await quantizeModel({ input, output: out, method: 'gptq', wformat, symmetric, groupSize: 32, aformat: 'int8', format: 'sim', calib: CALIB_TEXT, calibTokens: 512 });
    const q = loadModel(out);
    const w = tensorToFloat32(q, initializerMap(q).get('q_proj.weight')!);
    expect(w.every((v) => Number.isFinite(v))).toBe(true);
    for (let kk = 0; kk < 32; kk++) expect(w[kk * 64]).toBe(0);
    const runner = await openDecoder(out);
    const logits = (await runner.run([1, 2, 3], ['logits'])).logits.data as Float32Array;
    await runner.release();
    expect(logits.every((v) => Number.isFinite(v))).toBe(true);
  });
});
