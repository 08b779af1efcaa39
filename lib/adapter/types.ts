// The in-memory form of an adapter: per target module, a weight delta that is a scaled sum of
// Kronecker products, in the orientation of a torch Linear weight [out][in] (PEFT's and Compacter's
// files use it, and so does the native KronFactors: (A kron B)[p*bRows + q][r*bCols + s] = A[p][r] B[q][s]).
// An ONNX MatMul weight is [in][out], i.e. the transpose: exporters transpose in the graph (a folded
// constant), never here. Factors are never multiplied out in TypeScript: a factor given as a product
// (PEFT's w1_a @ w1_b) stays a product (the fused W4A8MatMul path multiplies it out natively), and
// the scale (alpha / r) stays a number.

/** A row-major matrix [rows][cols], given whole or as left [rows][rank] x right [rank][cols]. */
export type AdapterFactor =
  | { rows: number; cols: number; kind: 'dense'; values: Float32Array }
  | { rows: number; cols: number; kind: 'product'; rank: number; left: Float32Array; right: Float32Array };

/** One term A kron B: A [n1][k1], B [n2][k2]; it maps k1*k2 inputs to n1*n2 outputs. */
export interface KroneckerTerm {
  a: AdapterFactor;
  b: AdapterFactor;
}

/** delta W [outFeatures][inFeatures] = scale * sum_i terms[i].a kron terms[i].b, for one module. */
export interface AdapterDelta {
  /** The module name as the adapter file spells it, without PEFT's `base_model.model.` prefix (e.g. `model.layers.0.self_attn.q_proj`). */
  module: string;
  outFeatures: number;
  inFeatures: number;
  scale: number;
  terms: KroneckerTerm[];
}

export type AdapterKind = 'lokr' | 'compacter';

/** A whole adapter file: Compacter's shared A_i are the same Float32Array object in every delta that uses them. */
export interface Adapter {
  kind: AdapterKind;
  /** Where it was read from (for messages). */
  source: string;
  deltas: AdapterDelta[];
}

/** Parameters the delta stores (factors shared between deltas counted in each). */
export function factorParams(f: AdapterFactor): number {
  return f.kind === 'dense' ? f.rows * f.cols : f.rank * (f.rows + f.cols);
}
