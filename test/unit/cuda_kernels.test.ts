import { W4A8Error } from '../../lib/util/errors';
import { native } from '../../lib/native/binding';
import {
  cudaKroneckerAdd,
  cudaLinear,
  cudaQuantizeActivations,
  cudaStatus,
  type CudaWeight,
} from '../../lib/native/cuda';

// Small deterministic generator: fresh-looking, non-zero data without a dependency.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomWeight(n: number, k: number, groupSize: number, format: 'int4' | 'fp4', asym: boolean, seed: number): CudaWeight {
  const r = rng(seed);
  const blocks = Math.ceil(k / groupSize);
  const codes = new Uint8Array(n * blocks * (groupSize / 2)).map(() => Math.floor(r() * 256));
  const scales = new Float32Array(n * blocks).map(() => 0.002 + 0.03 * r());
  const w: CudaWeight = { format, n, k, groupSize, codes, scales };
  if (asym) w.zeroPoints = new Uint8Array(n * Math.ceil(blocks / 2)).map(() => Math.floor(r() * 256));
  return w;
}

// W[n][k] per formats.h (the definition every kernel is tested against).
function dequantize(w: CudaWeight, n: number, k: number): number {
  const blocks = Math.ceil(w.k / w.groupSize);
  const b = Math.floor(k / w.groupSize);
  const byte = w.codes[n * blocks * (w.groupSize / 2) + b * (w.groupSize / 2) + Math.floor((k % w.groupSize) / 2)];
  const q = k % 2 ? byte >> 4 : byte & 15;
  const scale = w.scales[n * blocks + b];
  if (w.format === 'fp4') {
    const mag = [0, 0.5, 1, 1.5, 2, 3, 4, 6][q & 7];
    return (q & 8 ? -mag : mag) * scale;
  }
  let zp = 8;
  if (w.zeroPoints) {
    const z = w.zeroPoints[n * Math.ceil(blocks / 2) + Math.floor(b / 2)];
    zp = b % 2 ? z >> 4 : z & 15;
  }
  return (q - zp) * scale;
}

const status = cudaStatus();
const onDevice = status.usable ? it : it.skip;
const offDevice = status.usable ? it.skip : it;

beforeAll(() => {
  if (!status.usable) console.log(`CUDA kernel runs skipped: ${status.reason}`);
});

describe('CUDA capabilities', () => {
  it('reports the build and the device consistently with buildInfo', () => {
    const info = native().buildInfo;
    expect(status.compiled).toBe(info.cudaCompiled);
    expect(status.devices).toBe(info.cudaDevices);
    expect(typeof native().cudaLinear === 'function').toBe(info.cudaCompiled);
    if (status.usable) {
      expect(status.computeCapability).toMatch(/^9\./);
    } else {
      expect(status.reason).toMatch(/CUDA|sm_90a/);
    }
  });
});

describe('CUDA wrappers validate arguments before touching the device', () => {
  const w = randomWeight(24, 40, 16, 'int4', true, 1);
  const x = new Float32Array(2 * 40).fill(0.5);

  it('rejects malformed weights and activations with TypeError / RangeError naming the argument', async () => {
    await expect(cudaLinear('w4a8', { ...w, codes: w.codes.subarray(1) }, x, 2)).rejects.toThrow(/Expected weight\.codes of length 576/);
    await expect(cudaLinear('w4a8', { ...w, groupSize: 24 }, x, 2)).rejects.toThrow(RangeError);
    await expect(cudaLinear('w4a8', { ...w, grouping: 'ic' }, x, 2)).rejects.toThrow(/grouping/);
    await expect(cudaLinear('w4a8', { ...w, format: 'fp4' }, x, 2)).rejects.toThrow(/fp4 is symmetric/);
    await expect(cudaLinear('w4a16', w, new Float32Array(9 * 40), 9)).rejects.toThrow(RangeError);
    await expect(cudaLinear('w4a8', w, new Float64Array(80) as unknown as Float32Array, 2)).rejects.toThrow(TypeError);
    await expect(cudaLinear('w4a8', w, x, 1.5)).rejects.toThrow(TypeError);
    await expect(cudaLinear('int3' as 'w4a8', w, x, 2)).rejects.toThrow(TypeError);
    await expect(cudaQuantizeActivations(x, 2, 40, {})).rejects.toThrow(RangeError);
    await expect(cudaQuantizeActivations(x, 3, 40)).rejects.toThrow('Expected x of length 120 (m=3 x k=40) but received 80');
    const big = { terms: 4, aRows: 64, aCols: 64, bRows: 64, bCols: 64, a: new Float32Array(4 * 4096), b: new Float32Array(4 * 4096) };
    await expect(cudaKroneckerAdd(big, new Float32Array(4096), 1, new Float32Array(4096))).rejects.toThrow(/exceeds 12288/);
  });
});

describe('without a usable CUDA device', () => {
  const w = randomWeight(24, 40, 16, 'int4', true, 2);
  const x = new Float32Array(40).fill(0.25);

  offDevice('refuses each call with a W4A8Error that says why', async () => {
    await expect(cudaLinear('w4a8', w, x, 1)).rejects.toThrow(W4A8Error);
    await expect(cudaLinear('w4a16', w, x, 1)).rejects.toThrow(status.reason as string);
    await expect(cudaQuantizeActivations(x, 1, 40)).rejects.toThrow(W4A8Error);
    const kt = { terms: 1, aRows: 2, aCols: 5, bRows: 3, bCols: 8, a: new Float32Array(10), b: new Float32Array(24) };
    await expect(cudaKroneckerAdd(kt, x, 1, new Float32Array(6))).rejects.toThrow(W4A8Error);
  });

  offDevice('the raw binding (when compiled) rejects its Promise instead of crashing', async () => {
    const b = native();
    if (!b.cudaLinear) {
      expect(status.compiled).toBe(false);
      return;
    }
    await expect(b.cudaLinear(0, 0, 24, 40, 16, w.codes, w.scales, w.zeroPoints ?? null, 1, x, new Float32Array(24)))
      .rejects.toThrow(/cudaLinear: unsupported/);
    expect(() => b.cudaLinear?.(0, 0, 24, 40, 16, w.codes.subarray(3), w.scales, null, 1, x, new Float32Array(24)))
      .toThrow(RangeError);
  });
});

describe('on a Hopper GPU', () => {
  onDevice('W4A16 and W4A8 match the dequantized product (odd shape, every group size)', async () => {
    const r = rng(7);
    for (const [format, asym] of [['int4', true], ['int4', false], ['fp4', false]] as const) {
      for (const g of [16, 32, 64, 128]) {
        const n = 72, k = 160, m = 5;
        const w = randomWeight(n, k, g, format, asym, Math.floor(r() * 1e9));
        const x = new Float32Array(m * k).map(() => r() * 2 - 1);
        let num16 = 0, num8 = 0, den = 0;
        const y16 = await cudaLinear('w4a16', w, x, m);
        const y8 = await cudaLinear('w4a8', w, x, m);
        for (let i = 0; i < m; i++) {
          for (let c = 0; c < n; c++) {
            let ref = 0;
            for (let j = 0; j < k; j++) ref += x[i * k + j] * dequantize(w, c, j);
            num16 += (y16[i * n + c] - ref) ** 2;
            num8 += (y8[i * n + c] - ref) ** 2;
            den += ref * ref;
          }
        }
        expect(Math.sqrt(num16 / den)).toBeLessThan(1e-5);
        // W4A8 adds int8 activation rounding: about 1% relative, never more than a few percent.
        expect(Math.sqrt(num8 / den)).toBeLessThan(0.03);
      }
    }
  });

  onDevice('quantizes activations per token to int8 and fp8', async () => {
    const r = rng(11);
    const m = 3, k = 100;
    const x = new Float32Array(m * k).map(() => r() * 6 - 3);
    const q = await cudaQuantizeActivations(x, m, k, { int8: true, fp8: true });
    for (let i = 0; i < m; i++) {
      const amax = Math.max(...Array.from(x.subarray(i * k, (i + 1) * k), Math.abs));
      expect(q.int8!.scales[i]).toBeCloseTo(amax / 127, 6);
      expect(q.fp8!.scales[i]).toBeCloseTo(amax / 448, 6);
      for (let j = 0; j < k; j++) expect(Math.abs(q.int8!.q[i * k + j] - x[i * k + j] / q.int8!.scales[i])).toBeLessThanOrEqual(0.5001);
    }
  });

  onDevice('adds the Kronecker adapter term', async () => {
    const r = rng(13);
    const kt = { terms: 2, aRows: 3, aCols: 4, bRows: 5, bCols: 6,
      a: new Float32Array(2 * 12).map(() => r() - 0.5), b: new Float32Array(2 * 30).map(() => r() - 0.5) };
    const m = 2, n = 15, k = 24;
    const x = new Float32Array(m * k).map(() => r() - 0.5);
    const y0 = new Float32Array(m * n).map(() => r() - 0.5);
    const y = Float32Array.from(y0);
    await cudaKroneckerAdd(kt, x, m, y);
    for (let t = 0; t < m; t++) {
      for (let p = 0; p < 3; p++) {
        for (let q = 0; q < 5; q++) {
          let ref = y0[t * n + p * 5 + q];
          for (let i = 0; i < 2; i++) {
            for (let rr = 0; rr < 4; rr++) {
              for (let s = 0; s < 6; s++) ref += kt.a[i * 12 + p * 4 + rr] * kt.b[i * 30 + q * 6 + s] * x[t * k + rr * 6 + s];
            }
          }
          expect(y[t * n + p * 5 + q]).toBeCloseTo(ref, 4);
        }
      }
    }
  });
});
