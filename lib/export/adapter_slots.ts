// Several adapters on one W4A8 base, chosen per run. The correction/adapter factors of a
// com.w4a8.W4A8MatMul node are its optional inputs 5..8 (native/include/w4a8/ort_op.h). A serving
// model keeps one adapter's factors as initializers (the default) and also declares them as graph
// inputs: ONNX Runtime then treats them as overridable initializers, and a run that feeds them uses
// the fed values instead. The op converts fed factors on every run (fp16 -> fp32, Kronecker A
// transposed), so switching adapters costs a feed, never a new session or a re-pack of the base.
// docs/ARCHITECTURE.md ("Several adapters on one session") has the measured per-run cost.
import type { NodeProto } from 'onnx-buf';
import type { AdapterDelta, AdapterFactor } from '../adapter/types';
import { divideVectors, matrixProduct, transposeMatrix } from '../native/tensor_layout';
import { makeValueInfo } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { makeFloatTensorLike, replaceInitializer } from '../onnx/tensor';
import { mainGraph } from './graph_edit';
import { W4A8_DOMAIN } from './weights';

/** The factors one W4A8MatMul adds: x U V and/or x sum_i A_i (x) B_i (fp32 values, stored as fp16). */
export interface FusedFactors {
  lowRank?: { rank: number; u: Float32Array; v: Float32Array };  // [K, r], [r, N]
  kron?: { terms: number; k1: number; n1: number; k2: number; n2: number; a: Float32Array; b: Float32Array };  // [R, k1, n1], [R, k2, n2]
}

/** One W4A8MatMul whose factor inputs a run may feed: the input names at positions 5..8 ('' when absent). */
export interface AdapterSlot {
  node: string;
  k: number;
  n: number;
  lowRank?: { u: string; v: string; rank: number };
  kron?: { a: string; b: string; dims: [number[], number[]] };
  /** The factor inputs stored (and so fed) as fp32. */
  float32: Set<string>;
}

/** A feed for a factor input: fp16 values (onnxruntime's 'float16' tensor takes the Uint16Array as is) or fp32. */
export type FactorFeed = { type: 'float16'; dims: number[]; data: Uint16Array } | { type: 'float32'; dims: number[]; data: Float32Array };

function intAttr(node: NodeProto, name: string): number {
  const a = node.attribute.find((x) => x.name === name);
  if (!a) throw new Error(`W4A8MatMul "${node.name}" has no ${name} attribute`);
  return Number(a.i);
}

/** The com.w4a8.W4A8MatMul nodes of the main graph, in graph order. */
export function w4a8MatMulNodes(model: OnnxModel): NodeProto[] {
  return mainGraph(model).node.filter((n) => n.domain === W4A8_DOMAIN && n.opType === 'W4A8MatMul');
}

function checkFactors(node: NodeProto, f: FusedFactors): void {
  const k = intAttr(node, 'K'), n = intAttr(node, 'N');
  const where = `W4A8MatMul "${node.name}" (K ${k}, N ${n})`;
  if (f.lowRank) {
    const { rank, u, v } = f.lowRank;
    if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`${where}: low-rank rank must be a positive integer, got ${rank}`);
    if (u.length !== k * rank || v.length !== rank * n) {
      throw new RangeError(`${where}: U has ${u.length} values and V ${v.length}; expected K*r = ${k * rank} and r*N = ${rank * n}`);
    }
  }
  if (f.kron) {
    const { terms, k1, n1, k2, n2, a, b } = f.kron;
    if (k1 * k2 !== k || n1 * n2 !== n) throw new RangeError(`${where}: Kronecker shapes k1*k2 = ${k1 * k2}, n1*n2 = ${n1 * n2}; expected K and N`);
    if (a.length !== terms * k1 * n1 || b.length !== terms * k2 * n2) {
      throw new RangeError(`${where}: Kronecker A has ${a.length} values and B ${b.length}; expected ${terms * k1 * n1} and ${terms * k2 * n2}`);
    }
  }
}

/** Initializer name suffixes of the factor inputs (after a per-node prefix). */
export interface FactorSuffixes { u: string; v: string; a: string; b: string }
const DEFAULT_SUFFIXES: FactorSuffixes = { u: '_lora_u', v: '_lora_v', a: '_kron_a', b: '_kron_b' };

/**
 * Stores `f` as initializers (fp16 by default; 'float32' doubles the bytes but lets a run feed fp32
 * low-rank factors that the op reads in place, with no conversion) named `<prefix>_lora_u` /
 * `_lora_v` / `_kron_a` / `_kron_b` and sets them as the node's factor inputs (replacing any it
 * had): the node then computes its adapter on every run, like a model with the adapter merged.
 */
export function attachFusedFactors(model: OnnxModel, node: NodeProto, f: FusedFactors, prefix: string, dtype: 'float16' | 'float32' = 'float16',
  suffixes: FactorSuffixes = DEFAULT_SUFFIXES): void {
  checkFactors(node, f);
  const k = intAttr(node, 'K'), n = intAttr(node, 'N');
  const put = (at: number, name: string, dims: number[], values: Float32Array) => {
    replaceInitializer(model, makeFloatTensorLike(name, dtype === 'float32' ? DataType.FLOAT : DataType.FLOAT16, dims, values));
    while (node.input.length <= at) node.input.push('');
    node.input[at] = name;
  };
  if (f.lowRank) {
    put(5, `${prefix}${suffixes.u}`, [k, f.lowRank.rank], f.lowRank.u);
    put(6, `${prefix}${suffixes.v}`, [f.lowRank.rank, n], f.lowRank.v);
  }
  if (f.kron) {
    const { terms, k1, n1, k2, n2 } = f.kron;
    put(7, `${prefix}${suffixes.a}`, [terms, k1, n1], f.kron.a);
    put(8, `${prefix}${suffixes.b}`, [terms, k2, n2], f.kron.b);
  }
}

/**
 * Declares every W4A8MatMul factor initializer as a graph input too (overridable: a run may feed
 * another adapter's factors of the same shapes), and returns the slots in graph order.
 */
export function exposeAdapterInputs(model: OnnxModel): AdapterSlot[] {
  const g = mainGraph(model);
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const declared = new Set(g.input.map((v) => v.name));
  const slots: AdapterSlot[] = [];
  let current = new Set<string>();
  const declare = (name: string): number[] => {
    const t = inits.get(name);
    if (!t) throw new Error(`factor "${name}" is not an initializer; only stored factors can be exposed as adapter inputs`);
    const dims = t.dims.map(Number);
    if (t.dataType === DataType.FLOAT) current.add(name);
    else if (t.dataType !== DataType.FLOAT16) throw new Error(`factor "${name}" is ${t.dataType}; adapter inputs are float or float16`);
    if (!declared.has(name)) {
      g.input.push(makeValueInfo(name, t.dataType as DataType, dims));
      declared.add(name);
    }
    return dims;
  };
  for (const node of w4a8MatMulNodes(model)) {
    current = new Set<string>();
    const slot: AdapterSlot = { node: node.name, k: intAttr(node, 'K'), n: intAttr(node, 'N'), float32: new Set() };
    const [u, v, a, b] = [5, 6, 7, 8].map((i) => node.input[i] ?? '');
    if (u && v) {
      slot.lowRank = { u, v, rank: declare(u)[1] ?? 0 };
      declare(v);
    }
    if (a && b) slot.kron = { a, b, dims: [declare(a), declare(b)] };
    slot.float32 = current;
    if (slot.lowRank || slot.kron) slots.push(slot);
  }
  return slots;
}

/**
 * The feeds that run `slots` with another adapter: `factors` by node name, of the same ranks and
 * shapes as the session's default (ORT checks the declared input shapes). A slot without an entry
 * keeps the model's default factors.
 */
export function adapterFeeds(slots: readonly AdapterSlot[], factors: ReadonlyMap<string, FusedFactors>): Record<string, FactorFeed> {
  const feeds: Record<string, FactorFeed> = {};
  // Each feed takes the type its slot declares (the stored default's).
  const half = (dims: number[], values: Float32Array, name: string): FactorFeed => {
    if (slots.some((s) => s.float32.has(name))) return { type: 'float32', dims, data: values };
    const t = makeFloatTensorLike('feed', DataType.FLOAT16, dims, values);
    return { type: 'float16', dims, data: new Uint16Array(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength / 2) };
  };
  for (const [node, f] of factors) {
    const slot = slots.find((s) => s.node === node);
    if (!slot) throw new RangeError(`adapter factors for "${node}", which is no W4A8MatMul with exposed adapter inputs`);
    if (f.lowRank) {
      if (!slot.lowRank || slot.lowRank.rank !== f.lowRank.rank) {
        throw new RangeError(`"${node}": low-rank factors of rank ${f.lowRank.rank}; the session's slot takes rank ${slot.lowRank?.rank ?? 'none'}`);
      }
      feeds[slot.lowRank.u] = half([slot.k, f.lowRank.rank], f.lowRank.u, slot.lowRank.u);
      feeds[slot.lowRank.v] = half([f.lowRank.rank, slot.n], f.lowRank.v, slot.lowRank.v);
    }
    if (f.kron) {
      if (!slot.kron) throw new RangeError(`"${node}": Kronecker factors given; the session's slot has none`);
      const { terms, k1, n1, k2, n2 } = f.kron;
      const da = [terms, k1, n1], db = [terms, k2, n2];
      if (da.join() !== slot.kron.dims[0].join() || db.join() !== slot.kron.dims[1].join()) {
        throw new RangeError(`"${node}": Kronecker factors [${da}] and [${db}]; the session's slot takes [${slot.kron.dims[0]}] and [${slot.kron.dims[1]}]`);
      }
      feeds[slot.kron.a] = half(da, f.kron.a, slot.kron.a);
      feeds[slot.kron.b] = half(db, f.kron.b, slot.kron.b);
    }
  }
  return feeds;
}

/** The factor [rows][cols] transposed to [cols][rows] and times `alpha`; a product (PEFT's w1_a @ w1_b) is multiplied out natively. */
async function denseTransposed(f: AdapterFactor, alpha: number): Promise<Float32Array> {
  if (f.kind === 'product') return matrixProduct(f.left, f.right, f.rows, f.rank, f.cols, { alpha, transpose: true });
  const t = await transposeMatrix(f.values, f.rows, f.cols);
  // The scale goes into A as a / (1 / s), natively.
  return alpha === 1 ? t : divideVectors(t, new Float32Array(t.length).fill(1 / alpha));
}

/**
 * The fused form of one adapter delta (lib/adapter/types.ts: delta W [out][in] = scale * sum_i
 * A_i kron B_i with A_i [n1][k1], B_i [n2][k2]): kron_a [R, k1, n1] = scale * A_i^T and
 * kron_b [R, k2, n2] = B_i^T, the MatMul orientation W4A8MatMul reads. Every term must have the
 * same factor shapes; a factor given as a product (PEFT's w1_a @ w1_b) is multiplied out natively.
 */
export async function fusedFactorsFromDelta(delta: AdapterDelta): Promise<FusedFactors> {
  const terms = delta.terms;
  if (terms.length === 0) throw new RangeError(`adapter delta "${delta.module}" has no terms`);
  const [n1, k1, n2, k2] = [terms[0].a.rows, terms[0].a.cols, terms[0].b.rows, terms[0].b.cols];
  if (n1 * n2 !== delta.outFeatures || k1 * k2 !== delta.inFeatures) {
    throw new RangeError(`adapter delta "${delta.module}": A ${n1}x${k1} kron B ${n2}x${k2} is not ${delta.outFeatures}x${delta.inFeatures}`);
  }
  if (!Number.isFinite(delta.scale)) throw new RangeError(`adapter delta "${delta.module}": scale ${delta.scale} is not finite`);
  const a = new Float32Array(terms.length * k1 * n1), b = new Float32Array(terms.length * k2 * n2);
  for (let i = 0; i < terms.length; i++) {
    const t = terms[i];
    if (t.a.rows !== n1 || t.a.cols !== k1 || t.b.rows !== n2 || t.b.cols !== k2) {
      throw new RangeError(`adapter delta "${delta.module}": term ${i} has A ${t.a.rows}x${t.a.cols}, B ${t.b.rows}x${t.b.cols}; the fused op takes one shape for all terms (term 0: A ${n1}x${k1}, B ${n2}x${k2})`);
    }
    a.set(await denseTransposed(t.a, delta.scale), i * k1 * n1);
    b.set(await denseTransposed(t.b, 1), i * k2 * n2);
  }
  return { kron: { terms: terms.length, k1, n1, k2, n2, a, b } };
}
