import { W4A8Error } from '../../lib/util/errors';
import { createCalibStats } from '../../lib/native/calib_stats';

function rowsOf(count: number, k: number, offset: number): Float32Array {
  const out = new Float32Array(count * k);
  for (let r = 0; r < count; r++) {
    out[r * k] = r + offset; // row id, to trace the sample
    for (let i = 1; i < k; i++) out[r * k + i] = Math.sin(0.37 * (r + offset) * i + i) * (i % 5 === 0 ? 10 : 1);
  }
  return out;
}

describe('calibration statistics (native)', () => {
  const k = 24;

  it('accumulates mean/max |x|, the Hessian X^T X and a bounded sample', async () => {
    const stats = createCalibStats({ k, sampleRows: 16, seed: 3, hessian: true });
    const a = rowsOf(30, k, 0);
    const b = rowsOf(50, k, 30);
    await Promise.all([stats.add(a), stats.add(b, 50)]);
    const res = await stats.finalize();
    expect(res.rows).toBe(80);
    expect(res.sampleRows).toBe(16);
    expect(res.sample.length).toBe(16 * k);
    const all = new Float32Array(80 * k);
    all.set(a);
    all.set(b, 30 * k);
    let h01 = 0;
    let mean5 = 0;
    let max5 = 0;
    for (let r = 0; r < 80; r++) {
      h01 += all[r * k + 1] * all[r * k + 2];
      mean5 += Math.abs(all[r * k + 5]);
      max5 = Math.max(max5, Math.abs(all[r * k + 5]));
    }
    expect(res.hessian).toBeInstanceOf(Float64Array);
    expect(res.hessian![1 * k + 2]).toBeCloseTo(h01, 3);
    expect(res.hessian![2 * k + 1]).toBe(res.hessian![1 * k + 2]);
    expect(res.meanAbs[5]).toBeCloseTo(mean5 / 80, 5);
    expect(res.maxAbs[5]).toBe(Math.fround(max5));
    // Sampled rows are real rows.
    for (let i = 0; i < 16; i++) {
      const id = res.sample[i * k];
      expect(Array.from(res.sample.subarray(i * k, (i + 1) * k))).toEqual(Array.from(all.subarray(id * k, (id + 1) * k)));
    }
    expect(() => stats.add(a)).toThrow(W4A8Error); // finalized
  });

  it('is deterministic for a seed whatever the batching, and fp16 input works', async () => {
    const data = rowsOf(200, k, 0);
    const one = createCalibStats({ k, sampleRows: 10, seed: 9, hessian: false });
    await one.add(data);
    const many = createCalibStats({ k, sampleRows: 10, seed: 9, hessian: 'float32' });
    for (let r = 0; r < 200; r += 13) await many.add(data.subarray(r * k, Math.min(200, r + 13) * k));
    const [x, y] = [await one.finalize(), await many.finalize()];
    expect(x.sample).toEqual(y.sample);
    expect(x.hessian).toBeUndefined();
    expect(y.hessian).toBeInstanceOf(Float32Array);
    const half = createCalibStats({ k, sampleRows: 4 });
    await half.add(new Uint16Array(3 * k).fill(0x3c00)); // 1.0 in fp16
    const h = await half.finalize();
    expect(h.meanAbs[0]).toBe(1);
    expect(h.hessian![0]).toBe(3);
  });

  it('refuses NaN batches without losing the statistics, and validates arguments', async () => {
    const stats = createCalibStats({ k, sampleRows: 4 });
    await stats.add(rowsOf(5, k, 0));
    const bad = rowsOf(2, k, 5);
    bad[3] = NaN;
    await expect(stats.add(bad)).rejects.toThrow(/NaN or Inf/);
    expect(stats.rows).toBe(5);
    expect(() => stats.add(new Float32Array(k + 1))).toThrow(/not a multiple of k/);
    expect(() => stats.add(new Float32Array(k), 0.5)).toThrow(TypeError);
    expect(() => stats.add(new Float32Array(k), 2)).toThrow(RangeError);
    expect(() => stats.add(new Float64Array(k) as unknown as Float32Array)).toThrow(TypeError);
    expect(() => createCalibStats({ k: 0 })).toThrow(RangeError);
    expect(() => createCalibStats({ k, hessian: 'int8' as 'float32' })).toThrow(TypeError);
    stats.dispose();
    expect(stats.bytes).toBe(0);
  });
});
