// Element-wise products of two per-channel vectors (length K: one value per input channel, a
// few thousand at most), e.g. folding AWQ's 1/s into a normalization weight. These are per-layer
// vectors, not weight tensors; the addon has no element-wise multiply, so this stays here.
// TODO(lead): move to the native addon if a vector op lands there.

export async function multiplyVectors(a: Float32Array, b: Float32Array): Promise<Float32Array> {
  if (a.length !== b.length) throw new RangeError(`multiplyVectors: lengths differ (${a.length} vs ${b.length})`);
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i];
  return out;
}

/** 1 / s per channel (AWQ scales are clamped >= 1e-4 natively, so no division by zero). */
export async function reciprocal(a: Float32Array): Promise<Float32Array> {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = 1 / a[i];
  return out;
}
