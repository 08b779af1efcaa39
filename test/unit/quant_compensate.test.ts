// Error compensation from the library: the native fit's validation, budgets and ranks respected,
// kron-aware's ALS never increasing, and every export (sim, MatMulNBits, QDQ; RTN and AWQ) run in
// stock onnxruntime-node against the dense product x (W_q + C) computed here in float64.
import * as ort from 'onnxruntime-node';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { modelBytes, type OnnxModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { summarizeModel } from '../../lib/onnx/inspect';
import { compensateError, quantizeWeight } from '../../lib/native/quant';
import type { CalibStats } from '../../lib/native/calib_stats';
import { resolveConfig, type ExportFormat, type QuantConfig } from '../../lib/quant/config';
import { planLayers } from '../../lib/quant/plan';
import { quantizeLayers } from '../../lib/quant/quantize_layers';
import { exportQuantized } from '../../lib/export/export_model';
import { bitsPerWeight, factorization, kronShapeCandidates, lowRankForBudget } from '../../lib/quant/compensate';
import { randomFloats } from '../helpers/onnx_fixtures';

const SEED = 1205;
const K = 64;
const N = 48;
const ROWS = 200;

/** Inputs with channel scales that differ by 30x: the H-weighting matters. */
function activations(rows: number, seed: number): Float32Array {
  const x = randomFloats(rows * K, seed);
  for (let r = 0; r < rows; r++) for (let c = 0; c < K; c++) x[r * K + c] *= 0.2 + 6 * ((c * 7) % 5);
  return x;
}

function gram(x: Float32Array, rows: number): Float64Array {
  const h = new Float64Array(K * K);
  for (let r = 0; r < rows; r++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) h[i * K + j] += x[r * K + i] * x[r * K + j];
  return h;
}

function oneLayer(w: Float32Array): OnnxModel {
  return makeModel(
    {
      name: 'one_layer',
      nodes: [makeNode('MatMul', ['x', 'w'], ['y'], {}, { name: 'proj' })],
      inputs: [makeValueInfo('x', DataType.FLOAT, ['batch', 'seq', K])],
      outputs: [makeValueInfo('y', DataType.FLOAT, ['batch', 'seq', N])],
      initializers: [makeFloatTensorLike('w', DataType.FLOAT, [K, N], w)],
    },
    [{ domain: '', version: 21 }],
  );
}

/** Dense C from the factors, straight from the definitions. */
function denseCorrection(a: Float32Array, b: Float32Array, rank: number, shapes?: { k1: number; n1: number; k2: number; n2: number }): Float64Array {
  const c = new Float64Array(K * N);
  if (!shapes) {
    for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) for (let r = 0; r < rank; r++) c[i * N + j] += a[i * rank + r] * b[r * N + j];
    return c;
  }
  const { k1, n1, k2, n2 } = shapes;
  for (let t = 0; t < rank; t++)
    for (let p = 0; p < k1; p++)
      for (let q = 0; q < k2; q++)
        for (let s = 0; s < n1; s++)
          for (let u = 0; u < n2; u++) c[(p * k2 + q) * N + s * n2 + u] += a[(t * k1 + p) * n1 + s] * b[(t * k2 + q) * n2 + u];
  return c;
}

async function runExport(c: QuantConfig, format: ExportFormat, w: Float32Array, calib: Float32Array, x: Float32Array, rows: number) {
  const model = oneLayer(w);
  const plan = planLayers(model, [], false);
  const stats: CalibStats = { k: K, rows: ROWS, meanAbs: new Float32Array(K), maxAbs: new Float32Array(K), hessian: gram(calib, ROWS), sample: calib, sampleRows: ROWS };
  for (let r = 0; r < ROWS; r++) for (let i = 0; i < K; i++) stats.meanAbs[i] += Math.abs(calib[r * K + i]) / ROWS;
  const parts = await quantizeLayers(model, plan, c, new Map([['x', stats]]), { exportFormat: format });
  const q = parts.layers[0];
  expect(q.compensation).toBeDefined();
  const comp = q.compensation!;
  const info = await exportQuantized(model, parts, format);
  const session = await ort.InferenceSession.create(modelBytes(model), info.sessionConfig ? { extra: { session: info.sessionConfig } } : {});
  const y = (await session.run({ x: new ort.Tensor('float32', x, [1, rows, K]) })).y.data as Float32Array;
  await session.release();
  // Expected: x' (W_q + C), x' = x / s for AWQ (the layer reads the scaled activation).
  const inv = parts.scalings[0]?.inverseScale;
  const cd = denseCorrection(comp.a, comp.b, comp.rank, comp.shapes);
  let worst = 0;
  let scale = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < N; j++) {
      let e = 0;
      for (let i = 0; i < K; i++) e += x[r * K + i] * (inv ? inv[i] : 1) * (q.dequantized[i * N + j] + cd[i * N + j]);
      worst = Math.max(worst, Math.abs(y[r * N + j] - e));
      scale = Math.max(scale, Math.abs(e));
    }
  }
  return { worst: worst / scale, comp, report: parts.reports[0], model };
}

describe(`error compensation (seed ${SEED})`, () => {
  const w = randomFloats(K * N, SEED, 0.3);
  const calib = activations(ROWS, SEED + 1);
  const x = activations(7, SEED + 2);

  it('exports as standard ops that ONNX Runtime runs like x (W_q + C), for every format and fit', async () => {
    const cases: [Partial<QuantConfig>, ExportFormat][] = [
      [{ compensate: 'lorc', compensateRank: 3 }, 'sim'],
      [{ compensate: 'lorc-aware', compensateBudget: 0.1 }, 'matmulnbits'],
      [{ compensate: 'kron-aware', compensateBudget: 0.1 }, 'qdq'],
      [{ compensate: 'kron-aware', compensateRank: 1 }, 'sim'],
      [{ method: 'awq', compensate: 'kron-aware', compensateBudget: 0.05 }, 'sim'],
      [{ method: 'awq', compensate: 'lorc-aware', compensateBudget: 0.05 }, 'matmulnbits'],
    ];
    for (const [partial, format] of cases) {
      const c = resolveConfig({ groupSize: 32, aformat: 'none', ...partial });
      const r = await runExport(c, format, w, calib, x, 7);
      // fp32 sums in ORT against float64 here.
      expect({ format, ...partial, err: r.worst < 2e-5 }).toEqual({ format, ...partial, err: true });
      const ops = r.model.proto.graph!.node.map((n) => n.opType);
      if (r.comp.shapes) {
        expect(ops).toEqual(expect.arrayContaining(['Reshape', 'Transpose', 'Add']));
        if (r.comp.rank > 1) expect(ops).toContain('ReduceSum');
      }
      expect(r.report.compensation!.extraParams).toBe(r.comp.a.length + r.comp.b.length);
      // inspect lists the correction with its extra parameters.
      expect(summarizeModel(r.model).corrections).toEqual([
        expect.objectContaining({ weight: 'w', kind: r.comp.shapes ? 'kronecker' : 'low-rank', rank: r.comp.rank, params: r.comp.a.length + r.comp.b.length }),
      ]);
      if (c.compensateBudget !== undefined) expect(r.report.compensation!.extraFraction).toBeLessThanOrEqual(c.compensateBudget);
      // 4-bit codes, fp16 scale + 4-bit zero point per 32 weights, 16 bits per factor parameter.
      expect(r.report.bitsPerWeight).toBeCloseTo(4 + 20 / 32 + (16 * r.comp.a.length + 16 * r.comp.b.length) / (K * N), 10);
    }
  });

  it('lorc-aware lowers the calibration error more than lorc at the same rank, and both lower it', async () => {
    const rtn = resolveConfig({ groupSize: 32, aformat: 'none' });
    const lorc = await runExport({ ...rtn, compensate: 'lorc', compensateRank: 4 }, 'sim', w, calib, x, 7);
    const aware = await runExport({ ...rtn, compensate: 'lorc-aware', compensateRank: 4 }, 'sim', w, calib, x, 7);
    const before = aware.report.errorAfter!;
    expect(lorc.report.compensation!.errorCompensated!).toBeLessThan(before);
    expect(aware.report.compensation!.errorCompensated!).toBeLessThan(lorc.report.compensation!.errorCompensated!);
  });

  it('kron-aware never raises the weighted error across ALS sweeps', async () => {
    const c = resolveConfig({ groupSize: 32, aformat: 'none' });
    const { dequantized } = await quantizeWeight(w, K, N, { format: 'int4', groupSize: c.groupSize });
    const h = gram(calib, ROWS);
    for (const s of kronShapeCandidates(K, N)) {
      const r = await compensateError(w, dequantized, K, N, h, { method: 'kron-aware', rank: 2, k1: s.k1, n1: s.n1, history: true, tol: 0, maxIters: 15 });
      const hist = Array.from(r.history!);
      for (let i = 1; i < hist.length; i++) expect(hist[i]).toBeLessThanOrEqual(hist[i - 1]);
      expect(r.weightedAfter).toBeLessThan(1);
    }
  });

  it('budgets give the ranks they afford; shapes follow the divisors; bad arguments are refused by name', async () => {
    expect(factorization(256)).toEqual([16, 16]);
    expect(factorization(128)).toEqual([8, 16]);
    expect(factorization(127)).toEqual([1, 127]);
    expect(factorization(172)).toEqual([4, 43]);
    expect(lowRankForBudget(64, 64, 0.05)).toBe(1);
    expect(lowRankForBudget(64, 64, 0.02)).toBe(0);
    expect(lowRankForBudget(4096, 4096, 0.05)).toBe(102);
    for (const s of kronShapeCandidates(64, 172)) {
      expect(s.k1 * s.k2).toBe(64);
      expect(s.n1 * s.n2).toBe(172);
    }
    const wq = new Float32Array(K * N);
    await expect(compensateError(w, wq, K, N, undefined, { method: 'lorc-aware', rank: 2 })).rejects.toThrow(/hessian/);
    await expect(compensateError(w, wq, K, N, undefined, { method: 'lorc', rank: 49 })).rejects.toThrow(/options\.rank/);
    await expect(compensateError(w, wq, K, N, gram(calib, ROWS), { method: 'kron-aware', rank: 1, k1: 5, n1: 4 })).rejects.toThrow(/divide/);
    expect(() => resolveConfig({ compensate: 'lorc' })).toThrow(/--compensate-budget/);
    expect(() => resolveConfig({ compensate: 'lorc', compensateBudget: 1.5 })).toThrow(/fraction/);
    expect(() => resolveConfig({ compensateBudget: 0.05 })).toThrow(/need --compensate/);
    // int8 factors: low rank only, and counted as 8 bits plus two fp32 scales per rank.
    expect(() => resolveConfig({ compensateFactors: 'int8' })).toThrow(/needs --compensate lorc\|lorc-aware/);
    expect(() => resolveConfig({ compensate: 'kron-aware', compensateRank: 2, compensateFactors: 'int8' })).toThrow(/kron-aware factors stay fp16/);
    const c8 = resolveConfig({ compensate: 'lorc', compensateRank: 2, compensateFactors: 'int8' });
    const c16 = resolveConfig({ compensate: 'lorc', compensateRank: 2 });
    expect(c8.compensateFactors).toBe('int8');
    expect(bitsPerWeight(c16, 64, 128, 2 * 192) - bitsPerWeight(c8, 64, 128, 2 * 192, 2)).toBeCloseTo((8 * 2 * 192 - 64 * 2) / (64 * 128), 12);
  });
});
