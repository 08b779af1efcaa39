import { W4A8Error } from '../../lib/util/errors';
import {
  awqSearch,
  fakeQuantActivations,
  gptqQuantize,
  layerOutputError,
  quantizeWeight,
  quantizedSizes,
  truncatedSvd,
} from '../../lib/native/quant';
import { gemmW4A8Reference, prepackWeight } from '../../lib/native/kernels';

// Deterministic pseudo-random normals (no Math.random: failures must reproduce).
function normals(count: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

function nibble(bytes: Uint8Array, index: number): number {
  const b = bytes[index >> 1];
  return index & 1 ? b >> 4 : b & 15;
}

describe('quantizeWeight (native RTN)', () => {
  const k = 96;
  const n = 40;
  const w = normals(k * n, 1, 0.05);

  it('int4 asymmetric g32: canonical codes, scales and zero points decode to the dequantized weight', async () => {
    const q = await quantizeWeight(w, k, n, { format: 'int4', groupSize: 32 });
    expect(q.groupSize).toBe(32);
    expect(q.codes.length).toBe(n * 3 * 16);
    expect(q.scales.length).toBe(n * 3);
    expect(q.zeroPoints?.length).toBe(n * 2);
    for (let col = 0; col < n; col += 7) {
      for (let row = 0; row < k; row += 5) {
        const b = Math.floor(row / 32);
        const code = nibble(q.codes, (col * 3 + b) * 32 + (row % 32));
        const zp = nibble(q.zeroPoints!, col * 4 + b);
        expect(q.dequantized[row * n + col]).toBe(Math.fround((code - zp) * q.scales[col * 3 + b]));
        // Within half a step of the input.
        expect(Math.abs(q.dequantized[row * n + col] - w[row * n + col])).toBeLessThanOrEqual(q.scales[col * 3 + b] * 0.5 + 1e-7);
      }
    }
  });

  it('int4 symmetric uses scale = absmax / 7 and no zero points', async () => {
    const q = await quantizeWeight(w, k, n, { format: 'int4', symmetric: true, groupSize: 32 });
    expect(q.zeroPoints).toBeUndefined();
    let absmax = 0;
    for (let row = 0; row < 32; row++) absmax = Math.max(absmax, Math.abs(w[row * n + 3]));
    expect(q.scales[3 * 3]).toBe(Math.fround(Math.fround(absmax) / 7));
  });

  it('per channel: blocks that repeat the channel scale, or one block of K rounded up to a power of two', async () => {
    const q = await quantizeWeight(w, k, n, { format: 'fp4', groupSize: 0, perChannelBlockSize: 32 });
    expect(q.perChannel).toBe(true);
    expect(q.groupSize).toBe(32);
    expect(q.scales.length).toBe(n * 3);
    for (let col = 0; col < n; col++) expect(new Set(q.scales.subarray(col * 3, col * 3 + 3)).size).toBe(1);
    const one = await quantizeWeight(w, k, n, { format: 'fp4', groupSize: 0, perChannelBlockSize: 0 });
    expect(one.groupSize).toBe(128);
    expect(one.scales.length).toBe(n);
    expect(one.dequantized).toEqual(q.dequantized);
    expect(quantizedSizes(k, n, { format: 'fp4', groupSize: 0, perChannelBlockSize: 0 })).toEqual({ codeBytes: n * 64, scaleCount: n, zeroPointBytes: 0, groupSize: 128 });
    expect(quantizedSizes(k, n, { format: 'int4', groupSize: 0 }).groupSize).toBe(128);
    await expect(quantizeWeight(w, k, n, { format: 'int4', groupSize: 0, perChannelBlockSize: 512 })).rejects.toThrow(RangeError);
  });

  it("grouping 'ic' returns one code per byte and scales per input row", async () => {
    const q = await quantizeWeight(w, k, n, { format: 'int4', groupSize: 16, grouping: 'ic' });
    expect(q.codes.length).toBe(k * n);
    expect(q.scales.length).toBe(k * 3);
    expect(q.zeroPoints?.length).toBe(k * 3);
    const row = 10;
    const col = 20;
    const s = q.scales[row * 3 + 1];
    expect(q.dequantized[row * n + col]).toBe(Math.fround((q.codes[row * n + col] - q.zeroPoints![row * 3 + 1]) * s));
  });

  it('does not modify its input and is deterministic', async () => {
    const copy = w.slice();
    const a = await quantizeWeight(w, k, n, { format: 'int4', groupSize: 64, pow2Scales: true, clipRatio: 0.9 });
    const b = await quantizeWeight(w, k, n, { format: 'int4', groupSize: 64, pow2Scales: true, clipRatio: 0.9 });
    expect(w).toEqual(copy);
    expect(a.codes).toEqual(b.codes);
    for (const s of a.scales) expect(Number.isInteger(Math.log2(s))).toBe(true);
  });

  it('all-zero weights give zero scales and exact zeros, no NaN', async () => {
    const q = await quantizeWeight(new Float32Array(32 * 4), 32, 4, { format: 'int4', groupSize: 16 });
    expect(Array.from(q.dequantized).every((v) => v === 0)).toBe(true);
    expect(Array.from(q.scales).every((v) => v === 0)).toBe(true);
  });

  it('refuses NaN weights with a W4A8Error and bad arguments with TypeError / RangeError', async () => {
    const bad = w.slice();
    bad[17] = NaN;
    await expect(quantizeWeight(bad, k, n, { format: 'int4', groupSize: 32 })).rejects.toThrow(W4A8Error);
    await expect(quantizeWeight(bad, k, n, { format: 'int4', groupSize: 32 })).rejects.toThrow(/NaN or Inf/);
    await expect(quantizeWeight(w, k, n, { format: 'int4', groupSize: 48 })).rejects.toThrow(RangeError);
    await expect(quantizeWeight(w, k, n, { format: 'int3' as 'int4', groupSize: 32 })).rejects.toThrow(TypeError);
    await expect(quantizeWeight(w, k + 1, n, { format: 'int4', groupSize: 32 })).rejects.toThrow(/Expected w of length 3880 \(k=97 x n=40\)/);
    await expect(quantizeWeight(new Float64Array(k * n) as unknown as Float32Array, k, n, { format: 'int4', groupSize: 32 })).rejects.toThrow(TypeError);
    await expect(quantizeWeight(w, k, n, { format: 'int4', groupSize: 32, clipRatio: 1.5 })).rejects.toThrow(RangeError);
    await expect(quantizeWeight(w, k, n, { format: 'fp4', symmetric: false, groupSize: 32 })).rejects.toThrow(RangeError);
    const clip = new Float32Array(n * 3).fill(0.9);
    const clipped = await quantizeWeight(w, k, n, { format: 'int4', groupSize: 32 }, { groupClip: clip });
    expect(clipped.scales[0]).toBeLessThan((await quantizeWeight(w, k, n, { format: 'int4', groupSize: 32 })).scales[0]);
    clip[4] = 0;
    await expect(quantizeWeight(w, k, n, { format: 'int4', groupSize: 32 }, { groupClip: clip })).rejects.toThrow(/\(0, 1\]/);
  });
});

describe('activation fake quantization and layer error', () => {
  it('int8: per-row absmax / 127 scales and round-half-even', async () => {
    const x = new Float32Array([127, 2.5, 3.5, -2.5, 0, 0, 0, 0]);
    const r = await fakeQuantActivations(x, 2, 4, 'int8');
    expect(Array.from(r.values)).toEqual([127, 2, 4, -2, 0, 0, 0, 0]);
    expect(Array.from(r.rowScales)).toEqual([1, 0]);
  });

  it('fp8: E4M3 values with 3 mantissa bits, absmax maps to 448', async () => {
    const x = new Float32Array([448, 1, 1.0625, 1.1875, 300, -17, 0.001, 2 ** -9 * 1.5]);
    const r = await fakeQuantActivations(x, 1, 8, 'fp8');
    // Ties go to the even mantissa: 1.0625 -> 1, 1.1875 -> 1.25, -17 -> -16; 300 -> 288 (step 32 above 256);
    // 0.001 is on the subnormal grid of 2^-9.
    expect(Array.from(r.values)).toEqual([448, 1, 1, 1.25, 288, -16, 2 ** -9, 2 ** -9 * 2]);
  });

  it('layerOutputError is 0 for identical weights and matches a direct computation', async () => {
    const s = 20;
    const k = 12;
    const n = 7;
    const x = normals(s * k, 5);
    const w = normals(k * n, 6);
    const wq = w.map((v, i) => v + 0.01 * Math.sin(i));
    expect(await layerOutputError(x, s, k, w, w, n)).toBe(0);
    let num = 0;
    let den = 0;
    for (let r = 0; r < s; r++) {
      for (let j = 0; j < n; j++) {
        let y = 0;
        let yq = 0;
        for (let i = 0; i < k; i++) {
          y += x[r * k + i] * w[i * n + j];
          yq += x[r * k + i] * wq[i * n + j];
        }
        num += (y - yq) ** 2;
        den += y * y;
      }
    }
    expect(await layerOutputError(x, s, k, w, wq, n)).toBeCloseTo(num / den, 6);
    await expect(layerOutputError(x, s, k, w, wq, n, 'int4' as 'int8')).rejects.toThrow(TypeError);
  });
});

describe('AWQ and GPTQ (native)', () => {
  const rows = 256;
  const k = 128;
  const n = 48;
  // Inputs with salient channels (every 11th x20) and correlated structure.
  const x = normals(rows * k, 9);
  for (let r = 0; r < rows; r++) for (let i = 0; i < k; i += 11) x[r * k + i] *= 20;
  const w1 = normals(k * n, 10, 0.03);
  const w2 = normals(k * 2 * n, 11, 0.03);

  it('awqSearch lowers the output error, returns s and per-layer results', async () => {
    const res = await awqSearch({ x, rows, k, layers: [{ w: w1, n, name: 'q' }, { w: w2, n: 2 * n, name: 'k' }], config: { format: 'int4', groupSize: 32 }, act: 'int8' });
    expect(res.alpha).toBeGreaterThan(0);
    expect(res.errorAfter).toBeLessThan(res.errorBefore);
    expect(res.scales.length).toBe(k);
    expect(res.scales[0]).toBeGreaterThan(res.scales[1]);
    expect(res.layers.map((l) => l.name)).toEqual(['q', 'k']);
    expect(res.layers[1].codes.length).toBe(2 * n * 4 * 16);
    expect(res.layers[1].meanClip).toBeGreaterThan(0.4);
    // The returned weights quantize diag(s) W: error measured on X / s against the scaled weight.
    const xs = x.map((v, i) => v / res.scales[i % k]);
    const ws = w1.map((v, i) => v * res.scales[Math.floor(i / n)]);
    const e = await layerOutputError(xs, rows, k, ws, res.layers[0].dequantized, n, 'int8');
    expect(e).toBeCloseTo(res.layers[0].errorAfter, 4);
    await expect(awqSearch({ x, rows, k, layers: [], config: { format: 'int4', groupSize: 32 } })).rejects.toThrow(RangeError);
  });

  it('awqSearch with duoScaling searches a superset: never a higher error than the mean|x| family alone', async () => {
    const layers = [{ w: w1, n }, { w: w2, n: 2 * n }];
    const config = { format: 'int4' as const, groupSize: 32 };
    const xOnly = await awqSearch({ x, rows, k, layers, config, duoScaling: false, clipGrid: 1 });
    const both = await awqSearch({ x, rows, k, layers, config, clipGrid: 1 });
    expect(xOnly.duoScaling).toBe(false);
    expect(xOnly.errorBefore).toBeCloseTo(both.errorBefore, 10); // alpha 0 of the first family is RTN in both
    expect(both.errorAfterScale).toBeLessThanOrEqual(xOnly.errorAfterScale);
    if (!both.duoScaling) expect(both.errorAfterScale).toBe(xOnly.errorAfterScale);
    await expect(awqSearch({ x, rows, k, layers, config, duoScaling: 1 as unknown as boolean })).rejects.toThrow(TypeError);
  });

  it.each(['per-token-per-group', 'per-token'] as const)('awqSearch with kernelActQuant %s scores with the W4A8 kernels', async (mode) => {
    const layers = [{ w: w1, n }, { w: w2, n: 2 * n }];
    const config = { format: 'int4' as const, groupSize: 32 };
    const res = await awqSearch({ x, rows, k, layers, config, act: 'int8', kernelActQuant: mode });
    expect(res.errorAfter).toBeLessThanOrEqual(res.errorBefore);
    // Recompute the first layer's reported error with the scalar kernel reference on X/s and the returned codes.
    const l0 = res.layers[0];
    const packed = await prepackWeight({ format: 'int4', n, k, groupSize: 32, codes: l0.codes, scales: l0.scales, zeroPoints: l0.zeroPoints });
    const xs = x.map((v, i) => v / res.scales[i % k]);
    const y = await gemmW4A8Reference(packed, xs, rows, { act: mode === 'per-token' ? 'token' : 'token-group' });
    let num = 0;
    let den = 0;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        let ref = 0;
        for (let i = 0; i < k; i++) ref += x[r * k + i] * w1[i * n + j];
        num += (ref - y[r * n + j]) ** 2;
        den += ref * ref;
      }
    }
    expect(l0.errorAfter).toBeCloseTo(num / den, 4);
    // ... which is not the float simulation's number.
    const sim = await layerOutputError(xs, rows, k, w1.map((v, i) => v * res.scales[Math.floor(i / n)]), l0.dequantized, n, 'int8');
    expect(Math.abs(sim - l0.errorAfter)).toBeGreaterThan(0);
    await expect(awqSearch({ x, rows, k, layers, config, act: 'fp8', kernelActQuant: mode })).rejects.toThrow(/act 'int8'/);
    await expect(awqSearch({ x, rows, k, layers, config, act: 'int8', kernelActQuant: 'row' as never })).rejects.toThrow(TypeError);
  });

  it('gptqQuantize beats RTN on the calibration inputs and equals RTN for H = I', async () => {
    const h = new Float64Array(k * k);
    for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) h[i * k + j] += x[r * k + i] * x[r * k + j];
    const cfg = { format: 'int4' as const, groupSize: 32 };
    const rtn = await quantizeWeight(w1, k, n, cfg);
    const g = await gptqQuantize(w1, k, n, h, { ...cfg, actOrder: true });
    const eRtn = await layerOutputError(x, rows, k, w1, rtn.dequantized, n);
    const eGptq = await layerOutputError(x, rows, k, w1, g.dequantized, n);
    expect(eGptq).toBeLessThan(eRtn);
    expect(g.deadInputs).toBe(0);
    const eye = new Float32Array(k * k);
    for (let i = 0; i < k; i++) eye[i * k + i] = 1;
    const id = await gptqQuantize(w1, k, n, eye, cfg);
    expect(id.codes).toEqual(rtn.codes);
    await expect(gptqQuantize(w1, k, n, new Float64Array(5), cfg)).rejects.toThrow(RangeError);
    const bad = h.slice();
    bad[3] = Infinity;
    await expect(gptqQuantize(w1, k, n, bad, cfg)).rejects.toThrow(W4A8Error);
  });
});

describe('truncatedSvd', () => {
  it('recovers a rank-2 matrix with orthonormal factors', async () => {
    const m = 30;
    const n = 20;
    const a = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] = 3 * Math.sin(i + 1) * Math.cos(j) + Math.cos(2 * i) * Math.sin(3 * j + 1);
    const { u, s, vt } = await truncatedSvd(a, m, n, 2);
    expect(s[0]).toBeGreaterThanOrEqual(s[1]);
    let maxErr = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const v = u[i * 2] * s[0] * vt[j] + u[i * 2 + 1] * s[1] * vt[n + j];
        maxErr = Math.max(maxErr, Math.abs(v - a[i * n + j]));
      }
    }
    expect(maxErr).toBeLessThan(1e-9);
    let dot = 0;
    for (let i = 0; i < m; i++) dot += u[i * 2] * u[i * 2 + 1];
    expect(Math.abs(dot)).toBeLessThan(1e-12);
  });
});
