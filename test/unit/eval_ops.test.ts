import { native } from '../../lib/native/binding';
import { argmaxRow, tokenNll, Logits } from '../../lib/native/eval_ops';

// A small deterministic PRNG so failures reproduce.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomLogits(seq: number, vocab: number, seed: number): Float32Array {
  const r = rng(seed);
  const data = new Float32Array(seq * vocab);
  for (let i = 0; i < data.length; i++) data[i] = (r() - 0.4) * 12;
  return data;
}

function referenceNll(row: ArrayLike<number>, target: number): number {
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]);
  return Math.log(sum) - row[target];
}

function randomTargets(n: number, vocab: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

describe('eval ops (native NLL and argmax)', () => {
  it.each([
    [1, 2],
    [7, 13],
    [64, 512],
    [40, 8000], // large enough to take the async path
  ])('matches a float64 log-softmax on random fp32 logits (%i x %i)', async (seq, vocab) => {
    const data = randomLogits(seq, vocab, seq * 31 + vocab);
    const targets = randomTargets(seq - 1 || 1, vocab, vocab);
    const { total, perToken } = await tokenNll({ data, dtype: 'float32', seq, vocab }, targets);
    let refTotal = 0;
    for (let r = 0; r < targets.length; r++) {
      const ref = referenceNll(data.subarray(r * vocab, (r + 1) * vocab), targets[r]);
      refTotal += ref;
      expect(Math.abs(perToken[r] - ref)).toBeLessThan(1e-9 * (1 + Math.abs(ref)));
    }
    expect(Math.abs(total - refTotal)).toBeLessThan(1e-9 * (1 + Math.abs(refTotal)));
  });

  it('reads fp16 logits as their fp16 values', async () => {
    const seq = 5;
    const vocab = 300;
    const f32 = randomLogits(seq, vocab, 7);
    const f16 = new Uint16Array(f32.length);
    native().float32ToFloat16(f32, f16);
    const rounded = new Float32Array(f32.length);
    native().float16ToFloat32(f16, rounded);
    const targets = randomTargets(seq, vocab, 3);
    const half: Logits = { data: f16, dtype: 'float16', seq, vocab };
    const { perToken } = await tokenNll(half, targets);
    for (let r = 0; r < seq; r++) {
      const row = rounded.subarray(r * vocab, (r + 1) * vocab);
      const ref = referenceNll(row, targets[r]);
      expect(Math.abs(perToken[r] - ref)).toBeLessThan(1e-9 * (1 + Math.abs(ref)));
      let best = 0;
      for (let v = 1; v < vocab; v++) if (row[v] > row[best]) best = v;
      expect(argmaxRow(half, r)).toBe(best);
    }
  });

  it('argmax picks the lowest index on ties and ignores NaN', () => {
    const data = new Float32Array([1, 5, 2, 5, NaN, -3, NaN, -2, NaN, NaN, NaN, NaN]);
    const logits: Logits = { data, dtype: 'float32', seq: 3, vocab: 4 };
    expect(argmaxRow(logits, 0)).toBe(1);
    expect(argmaxRow(logits, 1)).toBe(3);
    expect(argmaxRow(logits, 2)).toBe(-1);
  });

  it('scores only as many rows as there are targets', async () => {
    const seq = 6;
    const vocab = 9;
    const data = randomLogits(seq, vocab, 11);
    const targets = Int32Array.from([3, 8]);
    const { perToken, total } = await tokenNll({ data, dtype: 'float32', seq, vocab }, targets);
    expect(perToken.length).toBe(2);
    expect(total).toBeCloseTo(referenceNll(data.subarray(0, 9), 3) + referenceNll(data.subarray(9, 18), 8), 10);
  });

  it('rejects wrong arguments with TypeError / RangeError', async () => {
    const data = randomLogits(2, 4, 1);
    const ok: Logits = { data, dtype: 'float32', seq: 2, vocab: 4 };
    await expect(tokenNll({ ...ok, dtype: 'float16' }, new Int32Array([0]))).rejects.toThrow(TypeError);
    await expect(tokenNll({ ...ok, dtype: 'bf16' as never }, new Int32Array([0]))).rejects.toThrow(TypeError);
    await expect(tokenNll({ ...ok, vocab: 3 }, new Int32Array([0]))).rejects.toThrow(RangeError);
    await expect(tokenNll({ ...ok, seq: 1.5 }, new Int32Array([0]))).rejects.toThrow(TypeError);
    await expect(tokenNll(ok, [0] as unknown as Int32Array)).rejects.toThrow(TypeError);
    await expect(tokenNll(ok, new Int32Array([0, 1, 2]))).rejects.toThrow(RangeError);
    await expect(tokenNll(ok, new Int32Array([4]))).rejects.toThrow(/outside the vocabulary/);
    await expect(tokenNll(ok, new Int32Array([-1]))).rejects.toThrow(RangeError);
    expect(() => argmaxRow(ok, 2)).toThrow(RangeError);
    expect(() => argmaxRow(ok, -1)).toThrow(RangeError);
    expect(() => argmaxRow(ok, 0.5)).toThrow(TypeError);
    // The raw binding refuses too, rather than reading out of bounds.
    const out = new Float64Array(2);
    expect(() => native().tokenNll(data, 0, 3, 4, new Int32Array(3), new Float64Array(3))).toThrow(RangeError);
    expect(() => native().tokenNll(data, 0, 1, 4, new Int32Array([9]), out)).toThrow(RangeError);
    expect(() => native().tokenNll(data, 1, 1, 4, new Int32Array([0]), out)).toThrow(TypeError);
    expect(() => native().rowArgmax(data, 0, 2, 4)).toThrow(RangeError);
  });
});
