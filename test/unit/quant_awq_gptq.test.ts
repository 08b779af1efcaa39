// awq+gptq and GPTQ's clip search from the library: AWQ's scaling folded first, then GPTQ on
// diag(s) W with the scaled activations' Hessian; the exported model runs in stock onnxruntime-node
// as x diag(1/s) W'; its calibration error is below RTN's and AWQ's alone; the options are validated by name.
import * as ort from 'onnxruntime-node';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { modelBytes, type OnnxModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { gptqQuantize, layerOutputError } from '../../lib/native/quant';
import type { CalibStats } from '../../lib/native/calib_stats';
import { configLabel, resolveConfig, type QuantConfig } from '../../lib/quant/config';
import { planLayers } from '../../lib/quant/plan';
import { factorPrecisionOf, quantizeLayers } from '../../lib/quant/quantize_layers';
import { exportQuantized } from '../../lib/export/export_model';
import { randomFloats } from '../helpers/onnx_fixtures';

const SEED = 1206;
const K = 64;
const N = 48;
const ROWS = 256;

/** Inputs with channel scales that differ by 30x and a few outlier channels: what AWQ's scaling is for. */
function activations(rows: number, seed: number): Float32Array {
  const x = randomFloats(rows * K, seed);
  for (let r = 0; r < rows; r++) for (let c = 0; c < K; c++) x[r * K + c] *= (0.2 + 6 * ((c * 7) % 5)) * (c % 16 === 3 ? 4 : 1);
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

function statsOf(calib: Float32Array): CalibStats {
  const stats: CalibStats = { k: K, rows: ROWS, meanAbs: new Float32Array(K), maxAbs: new Float32Array(K), hessian: gram(calib, ROWS), sample: calib, sampleRows: ROWS };
  for (let r = 0; r < ROWS; r++) for (let i = 0; i < K; i++) stats.meanAbs[i] += Math.abs(calib[r * K + i]) / ROWS;
  return stats;
}

async function quantizeOne(c: QuantConfig, w: Float32Array, stats: CalibStats) {
  const model = oneLayer(w);
  const parts = await quantizeLayers(model, planLayers(model, [], false), c, new Map([['x', stats]]), { exportFormat: 'sim' });
  return { model, parts };
}

describe(`awq+gptq and the GPTQ clip search (seed ${SEED})`, () => {
  const w = randomFloats(K * N, SEED, 0.3);
  const calib = activations(ROWS, SEED + 1);
  const stats = statsOf(calib);

  it('exports x diag(1/s) W_q that stock ONNX Runtime runs, with a lower calibration error than RTN and AWQ', async () => {
    const base = { groupSize: 32, aformat: 'none' as const };
    const { model, parts } = await quantizeOne(resolveConfig({ ...base, method: 'awq+gptq' }), w, stats);
    expect(parts.scalings).toHaveLength(1);
    const inv = parts.scalings[0].inverseScale;
    const q = parts.layers[0];
    const report = parts.reports[0];
    expect(report.method).toBe('awq+gptq');
    expect(report.alpha).toBeDefined();
    const info = await exportQuantized(model, parts, 'sim');
    const x = activations(5, SEED + 2);
    const session = await ort.InferenceSession.create(modelBytes(model), info.sessionConfig ? { extra: { session: info.sessionConfig } } : {});
    const y = (await session.run({ x: new ort.Tensor('float32', x, [1, 5, K]) })).y.data as Float32Array;
    await session.release();
    let worst = 0;
    let scale = 0;
    for (let r = 0; r < 5; r++) {
      for (let j = 0; j < N; j++) {
        let e = 0;
        for (let i = 0; i < K; i++) e += x[r * K + i] * inv[i] * q.dequantized[i * N + j];
        worst = Math.max(worst, Math.abs(y[r * N + j] - e));
        scale = Math.max(scale, Math.abs(e));
      }
    }
    expect(worst / scale).toBeLessThan(2e-5);
    // The reported error is the scaled one, Qa(X/s) W' against X W, as layerOutputError computes it.
    const s = parts.scalings[0].scale;
    expect(report.errorAfter!).toBeCloseTo(await layerOutputError(calib, ROWS, K, w, q.dequantized, N, 'none', s), 12);
    const rtn = await quantizeOne(resolveConfig({ ...base, method: 'rtn' }), w, stats);
    const awq = await quantizeOne(resolveConfig({ ...base, method: 'awq' }), w, stats);
    const rtnError = await layerOutputError(calib, ROWS, K, w, rtn.parts.layers[0].dequantized, N, 'none');
    expect(Math.abs(report.errorBefore! - rtnError)).toBeLessThan(1e-6 * rtnError);
    expect(report.errorAfter!).toBeLessThan(rtnError);
    expect(report.errorAfter!).toBeLessThan(awq.parts.reports[0].errorAfter!);
  });

  it('clip search: gptq and awq+gptq take it, the label says so, other methods refuse it', async () => {
    for (const method of ['gptq', 'awq+gptq'] as const) {
      const c = resolveConfig({ groupSize: 32, aformat: 'int8', method, clipSearch: true, actOrder: method === 'gptq' });
      expect(configLabel(c)).toContain('clip-search');
      const { parts } = await quantizeOne(c, w, stats);
      expect(Number.isFinite(parts.reports[0].errorAfter!)).toBe(true);
    }
    expect(() => resolveConfig({ method: 'rtn', clipSearch: true })).toThrow(/--clip-search applies to --method gptq or awq\+gptq/);
    expect(() => resolveConfig({ method: 'awq', actOrder: true })).toThrow(/--act-order applies to --method gptq or awq\+gptq/);
  });

  it('gptqQuantize validates the clip search and the input scale by name', async () => {
    const h = gram(calib, ROWS);
    const cfg = { format: 'int4' as const, groupSize: 32 };
    await expect(gptqQuantize(w, K, N, h, { ...cfg, clipGrid: 0 })).rejects.toThrow(/clipGrid/);
    await expect(gptqQuantize(w, K, N, h, { ...cfg, clipGrid: 5, clipMin: 0 })).rejects.toThrow(/clipMin/);
    await expect(gptqQuantize(w, K, N, h, { ...cfg, inputScale: new Float32Array(K - 1).fill(1) })).rejects.toThrow(/inputScale/);
    const zero = new Float32Array(K).fill(1);
    zero[5] = 0;
    await expect(gptqQuantize(w, K, N, h, { ...cfg, inputScale: zero })).rejects.toThrow();
    // s = 1 is plain GPTQ.
    const plain = await gptqQuantize(w, K, N, h, cfg);
    const ones = await gptqQuantize(w, K, N, h, { ...cfg, inputScale: new Float32Array(K).fill(1) });
    expect(ones.dequantized).toEqual(plain.dequantized);
  });

  it('factorPrecision float32 (the largest Hessians) is validated and quantizes as the fp64 factorization does, to fp32 rounding', async () => {
    const h = gram(calib, ROWS);
    const cfg = { format: 'int4' as const, groupSize: 32 };
    await expect(gptqQuantize(w, K, N, h, { ...cfg, factorPrecision: 'float16' as never })).rejects.toThrow(/factorPrecision/);
    const f64 = await gptqQuantize(w, K, N, new Float32Array(h), cfg);
    const f32 = await gptqQuantize(w, K, N, new Float32Array(h), { ...cfg, factorPrecision: 'float32' });
    let same = 0;
    for (let i = 0; i < f64.codes.length; i++) same += f64.codes[i] === f32.codes[i] ? 1 : 0;
    const e64 = await layerOutputError(calib, ROWS, K, w, f64.dequantized, N);
    const e32 = await layerOutputError(calib, ROWS, K, w, f32.dequantized, N);
    console.log(`GPTQ factored in fp32: ${same}/${f64.codes.length} code bytes as fp64, output error ${e32.toExponential(4)} vs ${e64.toExponential(4)}`);
    expect(same).toBeGreaterThanOrEqual(0.98 * f64.codes.length);
    expect(Math.abs(e32 - e64)).toBeLessThanOrEqual(0.02 * e64);
  });

  it('quantizeLayers factors a Hessian in the precision it was kept in', () => {
    expect(factorPrecisionOf(new Float32Array(4))).toBe('float32');
    expect(factorPrecisionOf(new Float64Array(4))).toBe('float64');
  });
});
