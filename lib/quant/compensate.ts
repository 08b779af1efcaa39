// Error compensation per layer: how big the correction may be (rank from a budget of extra
// parameters, Kronecker factor shapes from the divisors of K and N), and the fit itself (native).
// The correction C sits beside the quantized weight: y = Qa(x) W_q + x C (the export adds it with
// standard MatMul/Add nodes). Factors are stored in fp16 and counted in the bits per weight.
import { W4A8Error } from '../util/errors';
import { PER_CHANNEL } from '../native/formats';
import type { QuantConfig } from './config';
import { nq } from './native_quant';

export interface KronShape {
  k1: number;
  n1: number;
  k2: number;
  n2: number;
}

/** What the exporter and the report need of one layer's correction. */
export interface LayerCompensation {
  method: 'lorc' | 'lorc-aware' | 'kron-aware';
  /** Low rank: r. kron-aware: the number of Kronecker terms. */
  rank: number;
  /** Low rank: A [K][r], B [r][N]. kron-aware: A [R][k1][n1], B [R][k2][n2]. fp16 values. */
  a: Float32Array;
  b: Float32Array;
  shapes?: KronShape;
  /** a.length + b.length. */
  extraParams: number;
  /** tr((E-C)^T H (E-C)) / tr(E^T H E), damped H (identity for lorc). */
  weightedError: number;
  /** w_q + C [K][N] (in AWQ's scaled space for AWQ layers); dropped once the layer's error is measured. */
  compensated?: Float32Array;
  iterations: number;
}

/** PEFT's factorization(dimension, -1): m <= n, m n = dimension, m the divisor reached walking up from 1 while m + n shrinks. */
export function factorization(dimension: number): [number, number] {
  let m = 1;
  let n = dimension;
  while (m < n) {
    let next = m + 1;
    while (dimension % next !== 0) next++;
    const nn = dimension / next;
    if (next + nn > m + n) break;
    m = next;
    n = nn;
  }
  return m <= n ? [m, n] : [n, m];
}

function divisors(x: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= x; d++) if (x % d === 0) out.push(d);
  return out;
}

/** The largest low rank whose factors (K + N) r fit in budget * K * N (0 when not even rank 1 fits). */
export function lowRankForBudget(k: number, n: number, budget: number): number {
  return Math.min(Math.min(k, n), Math.floor((budget * k * n) / (k + n) + 1e-9));
}

/** Terms of a Kronecker sum with A [k1][n1], B [k2][n2] that fit in budget * K * N. */
export function kronTermsForBudget(k: number, n: number, s: KronShape, budget: number): number {
  const per = s.k1 * s.n1 + s.k2 * s.n2;
  return Math.min(Math.min(s.k1 * s.n1, s.k2 * s.n2), Math.floor((budget * k * n) / per + 1e-9));
}

/**
 * Candidate Kronecker shapes of a K x N layer: A [k1][n1] with k1 among the three divisors of K
 * nearest sqrt(K) on a log scale and n1 likewise for N (PEFT's factorization() gives the nearest),
 * leaving out shapes where one factor is a row or column vector pair that makes each term a rank-1
 * outer product (that is low rank, not a Kronecker structure). PEFT's shape comes first.
 */
export function kronShapeCandidates(k: number, n: number): KronShape[] {
  const near = (x: number) =>
    divisors(x)
      .sort((a, b) => Math.abs(Math.log(a) - Math.log(x) / 2) - Math.abs(Math.log(b) - Math.log(x) / 2) || a - b)
      .slice(0, 3);
  const [pk] = factorization(k);
  const [pn] = factorization(n);
  const ks = [pk, ...near(k).filter((d) => d !== pk)];
  const ns = [pn, ...near(n).filter((d) => d !== pn)];
  const out: KronShape[] = [];
  for (const k1 of ks) {
    for (const n1 of ns) {
      const s = { k1, n1, k2: k / k1, n2: n / n1 };
      const outer = (s.k1 === k && s.n1 === 1) || (s.k1 === 1 && s.n1 === n) || (s.k1 * s.n1 === 1) || (s.k2 * s.n2 === 1);
      if (!outer) out.push(s);
    }
  }
  return out;
}

/**
 * Bits per weight of the deployable form: 4-bit codes, one fp16 scale (and a 4-bit zero point when
 * asymmetric) per group, fp16 factors, or int8 factors plus two fp32 row scales per rank (`rank`).
 */
export function bitsPerWeight(c: QuantConfig, k: number, n: number, extraParams: number, rank = 0): number {
  const groupsPerRow = c.groupSize === PER_CHANNEL ? 1 : Math.ceil(k / c.groupSize);
  const perGroup = 16 + (c.symmetric ? 0 : 4);
  const factorBits = c.compensateFactors === 'int8' ? 8 * extraParams + 2 * 32 * rank : 16 * extraParams;
  return 4 + (perGroup * groupsPerRow) / k + factorBits / (k * n);
}

export interface CompensateLayerInput {
  name: string;
  k: number;
  n: number;
  /** The float weight [K][N] (unscaled). */
  w: Float32Array;
  /** The dequantized quantized weight [K][N] (of diag(s) W for AWQ). */
  wq: Float32Array;
  hessian?: Float64Array | Float32Array;
  /** AWQ's per-input-channel scale s. */
  inputScale?: Float32Array;
}

/** The layer's correction, or undefined when the budget buys nothing (not even rank 1). */
export async function compensateLayer(c: QuantConfig, l: CompensateLayerInput): Promise<LayerCompensation | undefined> {
  const method = c.compensate;
  if (!method) return undefined;
  if (method !== 'lorc' && !l.hessian) throw new W4A8Error(`--compensate ${method} needs the calibration Hessian of layer "${l.name}"; give --calib <text>`);
  const base = { hessian: l.hessian, inputScale: l.inputScale };
  const finish = (r: nq.Compensation): LayerCompensation => ({
    method,
    rank: r.rank,
    a: r.a,
    b: r.b,
    shapes: r.shapes,
    extraParams: r.a.length + r.b.length,
    weightedError: r.weightedAfter,
    compensated: r.compensated,
    iterations: r.iterations,
  });
  if (method !== 'kron-aware') {
    const rank = c.compensateRank !== undefined ? Math.min(c.compensateRank, l.k, l.n) : lowRankForBudget(l.k, l.n, c.compensateBudget!);
    if (rank < 1) return undefined;
    return finish(await nq.compensateError(l.w, l.wq, l.k, l.n, base.hessian, { method, rank, inputScale: l.inputScale, name: l.name }));
  }
  // kron-aware: fit every candidate shape the budget affords and keep the lowest weighted error.
  let best: nq.Compensation | undefined;
  const shapes = kronShapeCandidates(l.k, l.n);
  for (const s of c.compensateRank !== undefined ? shapes.slice(0, 1) : shapes) {
    const terms = c.compensateRank !== undefined ? Math.min(c.compensateRank, s.k1 * s.n1, s.k2 * s.n2) : kronTermsForBudget(l.k, l.n, s, c.compensateBudget!);
    if (terms < 1) continue;
    const r = await nq.compensateError(l.w, l.wq, l.k, l.n, base.hessian, { method, rank: terms, k1: s.k1, n1: s.n1, inputScale: l.inputScale, name: l.name });
    if (!best || r.weightedAfter < best.weightedAfter) best = r;
  }
  return best ? finish(best) : undefined;
}
