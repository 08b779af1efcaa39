// The decoder's attention and RMSNorm as single com.w4a8 nodes (CachedAttention, RmsNorm), for
// `--format w4a8`. In the standard-op graph a layer's attention is ~45 nodes (rotary embedding,
// the cache Concat, the grouped-query Expand that copies the whole cache every step, scores,
// mask, softmax) and each RMSNorm 6 more; at one token per step the per-node cost and those copies
// take about as long as reading the int4 weights (docs/BENCHMARKS.md, "End to end").
//
// The pass recognizes the structure `w4a8 import llama2c` writes (lib/import/llama2c_graph.ts) by
// its op types and connections, not by names, and ONNX Runtime GenAI's layout (one
// com.microsoft.GroupQueryAttention per layer with rotary inside, SimplifiedLayerNormalization and
// SkipSimplifiedLayerNormalization: lib/import/llama2c_graph_genai.ts, or a GenAI export), and leaves
// anything else untouched: a layer whose attention does not match keeps its ops (the result says how
// many were fused). Only fp32
// graphs are fused (the kernels are fp32; --format w4a8 widens fp16 graphs first, widen_float16.ts). Numerics: the same computation in another summation
// order (softmax and RMSNorm sums in fp32 / double), within float rounding of the standard graph.
import type { NodeProto, TensorProto } from 'onnx-buf';
import { floatAttr, makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import { consumers, initializerMap, producers } from '../onnx/graph';
import type { OnnxModel } from '../onnx/model';
import { externalRef, isExternal } from '../onnx/external_data';
import type { SideFileWriter } from '../onnx/side_writer';
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { makeTensor, tensorByteSize, tensorDims, tensorElementCount, tensorRawBytes, tensorToFloat32 } from '../onnx/tensor';
import { ensureOpset, mainGraph } from './graph_edit';
import { W4A8_DOMAIN } from './weights';

export interface DecoderFusion {
  /** Layers whose attention became one CachedAttention node. */
  attention: number;
  /** Attention blocks (present.N.key outputs) left as standard ops. */
  attentionSkipped: number;
  /** RMSNorms that became RmsNorm nodes (with the residual Add before them, where there is one). */
  rmsNorm: number;
  /** W4A8MatMul groups merged into one (q, k, v -> one packed node; gate, up -> one with activation swiglu). */
  projections: number;
  /** Groups left apart because their arrays are in external data (a streamed export) or differ in format. */
  projectionsSkipped: number;
  /** Why nothing was fused, when nothing was. */
  reason?: string;
}

interface Graph {
  model: OnnxModel;
  inits: Map<string, TensorProto>;
  producer: Map<string, NodeProto>;
  readers: Map<string, NodeProto[]>;
  inputs: Set<string>;
}

const PRESENT_KEY = /^present\.(\d+)\.key$/;

function attrInts(n: NodeProto, name: string): number[] | undefined {
  const a = n.attribute.find((x) => x.name === name);
  return a ? a.ints.map(Number) : undefined;
}
function attrInt(n: NodeProto, name: string): number | undefined {
  const a = n.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : undefined;
}
function same(a: number[] | undefined, b: number[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The node producing `value` when it is a default-domain `op`. */
function made(g: Graph, value: string | undefined, op: string): NodeProto | undefined {
  if (!value) return undefined;
  const n = g.producer.get(value);
  return n && n.opType === op && (n.domain === '' || n.domain === 'ai.onnx') ? n : undefined;
}
/** The only reader of `value`, when it has op type `op`. */
function onlyReader(g: Graph, value: string, op: string): NodeProto | undefined {
  const r = g.readers.get(value) ?? [];
  return r.length === 1 && r[0].opType === op ? r[0] : undefined;
}
/** A small int64 constant (a shape or axes), or undefined. */
function constInts(g: Graph, name: string | undefined): number[] | undefined {
  const t = name ? g.inits.get(name) : undefined;
  if (!t || t.dataType !== DataType.INT64 || tensorElementCount(t) > 16) return undefined;
  const raw = new Uint8Array(tensorRawBytes(g.model, t)); // a copy: aligned for the int64 view
  return Array.from(new BigInt64Array(raw.buffer, 0, tensorElementCount(t)), Number);
}
/** A one-element fp32 constant, or undefined. */
function constScalar(g: Graph, name: string | undefined): number | undefined {
  const t = name ? g.inits.get(name) : undefined;
  if (!t || t.dataType !== DataType.FLOAT || tensorElementCount(t) !== 1) return undefined;
  return tensorToFloat32(g.model, t)[0];
}

/** The other input of a binary node. */
function other(n: NodeProto, one: string): string | undefined {
  return n.input[0] === one ? n.input[1] : n.input[1] === one ? n.input[0] : undefined;
}

interface Rotary {
  /** The projection output the rotation reads, before its [.., heads, head size] Reshape. */
  source: string;
  heads: number;
  headSize: number;
  cos: string;
  sin: string;
  positions: string;
}

/** [.., heads, hs] rows from Gather(table, positions) -> Unsqueeze: the table and the positions. */
function ropeTable(g: Graph, value: string | undefined): { table: string; positions: string } | undefined {
  const u = made(g, value, 'Unsqueeze');
  const gather = made(g, u?.input[0], 'Gather');
  if (!gather || !g.inits.has(gather.input[0]) || !g.inputs.has(gather.input[1])) return undefined;
  return { table: gather.input[0], positions: gather.input[1] };
}

/**
 * Undoes the importer's rotary block: Reshape(Concat(even*cos - odd*sin, even*sin + odd*cos)) of
 * Split(Reshape(Reshape(x, [0, 0, heads, hs]), [0, 0, heads, hs / 2, 2])).
 */
function rotaryOf(g: Graph, rotated: string): Rotary | undefined {
  const back = made(g, rotated, 'Reshape');
  const cat = made(g, back?.input[0], 'Concat');
  if (!back || !cat || cat.input.length !== 2) return undefined;
  const sub = made(g, cat.input[0], 'Sub');
  const mulEc = made(g, sub?.input[0], 'Mul');
  const mulOs = made(g, sub?.input[1], 'Mul');
  if (!sub || !mulEc || !mulOs) return undefined;
  const split = made(g, mulEc.input[0], 'Split');
  if (!split || split.output[0] !== mulEc.input[0] || mulOs.input[0] !== split.output[1]) return undefined;
  const cos = ropeTable(g, mulEc.input[1]);
  const sin = ropeTable(g, mulOs.input[1]);
  const pairs = made(g, split.input[0], 'Reshape');
  const heads = made(g, pairs?.input[0], 'Reshape');
  const pairShape = constInts(g, pairs?.input[1]);
  const headShape = constInts(g, heads?.input[1]);
  if (!cos || !sin || cos.positions !== sin.positions || !heads || !pairShape || !headShape) return undefined;
  if (headShape.length !== 4 || !same(pairShape, [0, 0, headShape[2], headShape[3] / 2, 2])) return undefined;
  if (!same(constInts(g, back.input[1]), headShape)) return undefined;
  return { source: heads.input[0], heads: headShape[2], headSize: headShape[3], cos: cos.table, sin: sin.table, positions: cos.positions };
}

/** Follows the grouped-query repeat (Unsqueeze -> Expand -> Reshape) when there is one. */
function afterRepeat(g: Graph, value: string): string {
  const u = onlyReader(g, value, 'Unsqueeze');
  const e = u && onlyReader(g, u.output[0], 'Expand');
  const r = e && onlyReader(g, e.output[0], 'Reshape');
  return r ? r.output[0] : value;
}

interface AttentionMatch {
  node: NodeProto;
  /** Nodes whose outputs the fused node takes over. */
  replaced: NodeProto[];
}

function matchAttention(g: Graph, layer: string, maskInput: string): AttentionMatch | undefined {
  const presentKey = `present.${layer}.key`, presentValue = `present.${layer}.value`;
  const catK = made(g, presentKey, 'Concat');
  const catV = made(g, presentValue, 'Concat');
  if (!catK || !catV || attrInt(catK, 'axis') !== 2 || attrInt(catV, 'axis') !== 2) return undefined;
  const [pastK, kNew] = catK.input;
  const [pastV, vNew] = catV.input;
  if (!g.inputs.has(pastK) || !g.inputs.has(pastV)) return undefined;
  const kT = made(g, kNew, 'Transpose');
  const vT = made(g, vNew, 'Transpose');
  if (!kT || !vT || !same(attrInts(kT, 'perm'), [0, 2, 1, 3]) || !same(attrInts(vT, 'perm'), [0, 2, 1, 3])) return undefined;
  const k = rotaryOf(g, kT.input[0]);
  const vHeads = made(g, vT.input[0], 'Reshape');
  const vShape = constInts(g, vHeads?.input[1]);
  if (!k || !vHeads || !vShape || !same(vShape, [0, 0, k.heads, k.headSize])) return undefined;

  // Scores: MatMul(Transpose(q, 0213), Transpose(repeat(present key), 0132)), then Div, Where, Softmax.
  const keysT = onlyReader(g, afterRepeat(g, presentKey), 'Transpose');
  const scores = keysT && same(attrInts(keysT, 'perm'), [0, 1, 3, 2]) ? onlyReader(g, keysT.output[0], 'MatMul') : undefined;
  if (!scores || scores.input[1] !== keysT!.output[0]) return undefined;
  const qT = made(g, scores.input[0], 'Transpose');
  const q = qT && same(attrInts(qT, 'perm'), [0, 2, 1, 3]) ? rotaryOf(g, qT.input[0]) : undefined;
  if (!q || q.headSize !== k.headSize || q.heads % k.heads !== 0 || q.cos !== k.cos || q.sin !== k.sin || q.positions !== k.positions) return undefined;
  const div = onlyReader(g, scores.output[0], 'Div');
  const divisor = constScalar(g, div?.input[1]);
  const where = div && onlyReader(g, div.output[0], 'Where');
  const softmax = where && onlyReader(g, where.output[0], 'Softmax');
  if (!div || divisor === undefined || !(divisor > 0) || !where || where.input[2] !== div.output[0] || !softmax) return undefined;
  if (constScalar(g, where.input[1]) !== -Infinity || (attrInt(softmax, 'axis') ?? -1) !== -1) return undefined;
  // The mask must be the importer's causal-or-padding mask, built from attention_mask alone.
  if (!maskReadsOnly(g, where.input[0], maskInput)) return undefined;
  const context = onlyReader(g, softmax.output[0], 'MatMul');
  if (!context || context.input[0] !== softmax.output[0] || context.input[1] !== afterRepeat(g, presentValue)) return undefined;
  const ctxT = onlyReader(g, context.output[0], 'Transpose');
  const merge = ctxT && same(attrInts(ctxT, 'perm'), [0, 2, 1, 3]) ? onlyReader(g, ctxT.output[0], 'Reshape') : undefined;
  const mergeShape = constInts(g, merge?.input[1]);
  if (!merge || !mergeShape || !same(mergeShape, [0, 0, q.heads * q.headSize])) return undefined;

  const node = makeNode(
    'CachedAttention',
    [q.source, k.source, vHeads.input[0], pastK, pastV, maskInput, q.positions, q.cos, q.sin],
    [merge.output[0], presentKey, presentValue],
    { num_heads: q.heads, kv_num_heads: k.heads, scale: floatAttr(1 / divisor) },
    { name: `/layers.${layer}/attn/CachedAttention`, domain: W4A8_DOMAIN },
  );
  return { node, replaced: [merge, catK, catV] };
}

// GroupQueryAttention's attributes the fused op reproduces; any other (a local window, softcap,
// smooth softmax, ...) keeps the node as it is.
const GQA_ATTRS: Record<string, (n: NodeProto) => boolean> = {
  num_heads: () => true,
  kv_num_heads: () => true,
  do_rotary: (n) => attrInt(n, 'do_rotary') === 1,
  rotary_interleaved: (n) => [0, 1].includes(attrInt(n, 'rotary_interleaved')!),
  scale: () => true,
  local_window_size: (n) => attrInt(n, 'local_window_size') === -1,
  softcap: (n) => (n.attribute.find((a) => a.name === 'softcap')?.f ?? 0) === 0,
  smooth_softmax: (n) => attrInt(n, 'smooth_softmax') === 0,
};

/**
 * An ONNX Runtime GroupQueryAttention of a layer (query, key, value or a packed query, the cache in
 * and out, seqlens_k and total_sequence_length computed from the attention mask alone, rotary
 * tables as fp32 initializers) as CachedAttention with the same inputs and position_ids left out
 * (the op derives them from the mask as GroupQueryAttention does).
 */
function matchGroupQueryAttention(g: Graph, layer: string, maskInput: string): { node: NodeProto; replaced: NodeProto[] } | undefined {
  const presentKey = `present.${layer}.key`;
  const gqa = g.producer.get(presentKey);
  if (!gqa || gqa.opType !== 'GroupQueryAttention' || gqa.domain !== 'com.microsoft') return undefined;
  if (gqa.output[1] !== presentKey || gqa.output.length !== 3 || gqa.input.length !== 9) return undefined;
  if (gqa.attribute.some((a) => !GQA_ATTRS[a.name]?.(gqa))) return undefined;
  const [q, k, v, pastK, pastV, seqlensK, total, cos, sin] = gqa.input;
  if (!q || (k === '') !== (v === '') || !g.inputs.has(pastK) || !g.inputs.has(pastV)) return undefined;
  if (!maskReadsOnly(g, seqlensK, maskInput) || !maskReadsOnly(g, total, maskInput)) return undefined;
  const heads = attrInt(gqa, 'num_heads'), kvHeads = attrInt(gqa, 'kv_num_heads');
  const table = (name: string) => g.inits.get(name);
  const c = table(cos), sn = table(sin);
  if (!heads || !kvHeads || !c || !sn || c.dataType !== DataType.FLOAT || sn.dataType !== DataType.FLOAT) return undefined;
  const dims = tensorDims(c);
  if (dims.length !== 2 || !same(tensorDims(sn), dims)) return undefined;
  const attrs: Record<string, number | ReturnType<typeof floatAttr>> = {
    num_heads: heads, kv_num_heads: kvHeads, rotary_interleaved: attrInt(gqa, 'rotary_interleaved') ?? 0,
  };
  const scale = gqa.attribute.find((a) => a.name === 'scale')?.f;
  if (scale) attrs.scale = floatAttr(scale);
  const node = makeNode('CachedAttention', [q, k, v, pastK, pastV, maskInput, '', cos, sin], [...gqa.output], attrs,
    { name: `/layers.${layer}/attn/CachedAttention`, domain: W4A8_DOMAIN });
  return { node, replaced: [gqa] };
}

/** True when every graph input the value depends on is `maskInput` (constants aside). */
function maskReadsOnly(g: Graph, value: string, maskInput: string): boolean {
  const seen = new Set<string>();
  const stack = [value];
  let readsMask = false;
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (g.inits.has(v)) continue;
    if (g.inputs.has(v)) {
      // Shapes of the cache and of input_ids only give lengths (the causal part).
      if (v === maskInput) readsMask = true;
      else if (!/^past_key_values\.\d+\.key$/.test(v) && v !== 'input_ids') return false;
      continue;
    }
    const n = g.producer.get(v);
    if (!n) return false;
    for (const i of n.input) if (i !== '') stack.push(i);
  }
  return readsMask;
}

interface NormMatch {
  node: NodeProto;
  replaced: NodeProto[];
  /** The residual Add folded in (its output becomes the node's second output). */
  add?: NodeProto;
}

/** Mul(Mul(x, Reciprocal(Sqrt(Add(ReduceMean(Mul(x, x)), eps)))), weight), weight a 1-D initializer. */
function matchRmsNorm(g: Graph, last: NodeProto): NormMatch | undefined {
  if (last.opType !== 'Mul' || last.domain !== '') return undefined;
  const weight = last.input.find((i) => g.inits.has(i) && tensorDims(g.inits.get(i)!).length === 1 && g.inits.get(i)!.dataType === DataType.FLOAT);
  const scaled = made(g, weight ? other(last, weight) : undefined, 'Mul');
  if (!weight || !scaled) return undefined;
  for (const x of scaled.input) {
    const recip = made(g, other(scaled, x), 'Reciprocal');
    const sqrt = made(g, recip?.input[0], 'Sqrt');
    const add = made(g, sqrt?.input[0], 'Add');
    const mean = add && (made(g, add.input[0], 'ReduceMean') ?? made(g, add.input[1], 'ReduceMean'));
    const eps = mean && add ? constScalar(g, other(add, mean.output[0])) : undefined;
    const square = made(g, mean?.input[0], 'Mul');
    if (!recip || !mean || eps === undefined || !(eps >= 0) || !square || square.input[0] !== x || square.input[1] !== x) continue;
    const axes = attrInts(mean, 'axes') ?? constInts(g, mean.input[1]);
    if (!same(axes, [-1]) || attrInt(mean, 'keepdims') === 0) continue;
    if (tensorDims(g.inits.get(weight)!)[0] <= 0) continue;
    // A residual Add right before (x = a + b, read only by this norm and what reads the sum later).
    const residual = made(g, x, 'Add');
    const inputs = residual && !residual.input.some((i) => g.inits.has(i) || i === '') ? [residual.input[0], weight, residual.input[1]] : [x, weight];
    const outputs = inputs.length === 3 ? [last.output[0], x] : [last.output[0]];
    const node = makeNode('RmsNorm', inputs, outputs, { epsilon: floatAttr(eps) }, { name: `${last.name || x}/RmsNorm`, domain: W4A8_DOMAIN });
    return { node, replaced: inputs.length === 3 ? [last, residual!] : [last], ...(inputs.length === 3 ? { add: residual } : {}) };
  }
  return undefined;
}

/**
 * ONNX Runtime's norms as RmsNorm: SimplifiedLayerNormalization(x, weight) over the last axis, and
 * com.microsoft.SkipSimplifiedLayerNormalization(x, skip, weight) whose sum output is x + skip (no
 * bias, mean and inverse-deviation outputs unread).
 */
function matchContribRmsNorm(g: Graph, n: NodeProto): NormMatch | undefined {
  const simple = n.opType === 'SimplifiedLayerNormalization' && (n.domain === '' || n.domain === 'ai.onnx');
  const skip = n.opType === 'SkipSimplifiedLayerNormalization' && n.domain === 'com.microsoft';
  if (!simple && !skip) return undefined;
  const weight = n.input[simple ? 1 : 2];
  const w = weight ? g.inits.get(weight) : undefined;
  if (!w || w.dataType !== DataType.FLOAT || tensorDims(w).length !== 1 || tensorDims(w)[0] <= 0) return undefined;
  if ((attrInt(n, 'axis') ?? -1) !== -1 || n.input.length !== (simple ? 2 : 3) || n.input.some((i) => i === '')) return undefined;
  const graphOutputs = new Set(mainGraph(g.model).output.map((o) => o.name));
  const unread = (i: number) => !n.output[i] || ((g.readers.get(n.output[i]) ?? []).length === 0 && !graphOutputs.has(n.output[i]));
  const eps = n.attribute.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
  if (simple) {
    if (!unread(1)) return undefined;
    const node = makeNode('RmsNorm', [n.input[0], weight], [n.output[0]], { epsilon: floatAttr(eps) }, { name: `${n.name || n.output[0]}/RmsNorm`, domain: W4A8_DOMAIN });
    return { node, replaced: [n] };
  }
  if (!unread(1) || !unread(2)) return undefined;
  const sum = n.output[3] && !unread(3) ? [n.output[3]] : [];
  const node = makeNode('RmsNorm', [n.input[0], weight, n.input[1]], [n.output[0], ...sum], { epsilon: floatAttr(eps) }, { name: `${n.name || n.output[0]}/RmsNorm`, domain: W4A8_DOMAIN });
  return { node, replaced: [n] };
}

/** Removes nodes that no graph output depends on. */
function pruneDead(model: OnnxModel): void {
  const graph = mainGraph(model);
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node) for (const o of n.output) if (o !== '') producer.set(o, n);
  const live = new Set<NodeProto>();
  const stack = graph.output.map((o) => o.name);
  const seen = new Set<string>();
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const n = producer.get(v);
    if (!n || live.has(n)) continue;
    live.add(n);
    for (const i of n.input) if (i !== '') stack.push(i);
  }
  graph.node = graph.node.filter((n) => live.has(n));
  const read = new Set<string>();
  for (const n of graph.node) for (const i of n.input) read.add(i);
  for (const o of graph.output) read.add(o.name);
  graph.initializer = graph.initializer.filter((t) => read.has(t.name));
}

function snapshot(model: OnnxModel): Graph {
  const graph = mainGraph(model);
  return { model, inits: initializerMap(model), producer: producers(model), readers: consumers(model), inputs: new Set(graph.input.map((v) => v.name)) };
}

export interface FuseOptions {
  /** Merge q|k|v and gate|up W4A8MatMuls (default true); adapters cannot attach to merged layers. */
  mergeProjections?: boolean;
  /**
   * The side file a streamed export wrote the arrays to: layers whose arrays it holds back to back
   * (SideFileWriter.takeRun) merge by one reference spanning them.
   */
  sideWriter?: SideFileWriter;
}

/** Rewrites the decoder's attention blocks and RMSNorms of an fp32 model into com.w4a8 nodes, in place. */
export function fuseDecoder(model: OnnxModel, options: FuseOptions = {}): DecoderFusion {
  const graph = mainGraph(model);
  const result: DecoderFusion = { attention: 0, attentionSkipped: 0, rmsNorm: 0, projections: 0, projectionsSkipped: 0 };
  const layers = graph.output.map((o) => PRESENT_KEY.exec(o.name)?.[1]).filter((x): x is string => x !== undefined);
  const maskInput = graph.input.find((v) => v.name === 'attention_mask')?.name;
  const elem = graph.output.find((o) => PRESENT_KEY.test(o.name))?.type?.value;
  const fp32 = elem?.case === 'tensorType' && elem.value.elemType === DataType.FLOAT;
  if (layers.length === 0 || !maskInput) return { ...result, reason: 'no key/value cache with an attention_mask input' };
  if (!fp32) return { ...result, reason: 'the cache is not fp32 (the fused kernels are fp32)' };

  // Attention first (it reads the norms' outputs, which keep their names).
  let g = snapshot(model);
  const swaps = new Map<NodeProto, NodeProto>(); // the node whose place the fused one takes
  const drop = new Set<NodeProto>();
  for (const layer of layers) {
    const m = matchAttention(g, layer, maskInput) ?? matchGroupQueryAttention(g, layer, maskInput);
    if (!m) {
      result.attentionSkipped++;
      continue;
    }
    // In the merge Reshape's place: every input of the fused node is computed before it.
    swaps.set(m.replaced[0], m.node);
    for (const n of m.replaced.slice(1)) drop.add(n);
    result.attention++;
  }
  graph.node = graph.node.filter((n) => !drop.has(n)).map((n) => swaps.get(n) ?? n);
  pruneDead(model);

  g = snapshot(model);
  const normSwaps = new Map<NodeProto, NodeProto>();
  const normDrop = new Set<NodeProto>();
  for (const n of graph.node) {
    const m = matchRmsNorm(g, n) ?? matchContribRmsNorm(g, n);
    if (!m) continue;
    // With a residual the node takes the Add's place (the sum's readers come after it), else the last Mul's.
    if (m.add) {
      normSwaps.set(m.add, m.node);
      normDrop.add(n);
    } else normSwaps.set(n, m.node);
    result.rmsNorm++;
  }
  graph.node = graph.node.filter((n) => !normDrop.has(n)).map((n) => normSwaps.get(n) ?? n);
  pruneDead(model);
  if (options.mergeProjections ?? true) mergeProjections(model, result, options.sideWriter);
  if (result.attention + result.rmsNorm > 0) ensureOpset(model, W4A8_DOMAIN, 1);
  return result;
}

// ---- Merging W4A8MatMul nodes that read the same activation -------------------------------------
// A decode step's small GEMVs (tinyllama's k and v: 2048 x 256) cost more in per-call overhead than
// in weight bytes; one node over the concatenated columns reads the same bytes in one call. The
// canonical arrays are row-major in N (codes [N, blocks, bs/2], scales [N * blocks], zero points
// [N * ceil(blocks/2)]), so concatenating along N is concatenating the arrays.

/** The doc string of a merged node: this prefix, then its layers' node names, comma-separated. */
export const MERGED_DOC_PREFIX = 'w4a8 merged projections: ';

const MERGE_ATTRS_EXCEPT_N = ['K', 'bits', 'block_size', 'weight_format', 'activation_format', 'activation'];

function isW4A8MatMul(n: NodeProto | undefined): n is NodeProto {
  return n !== undefined && n.opType === 'W4A8MatMul' && n.domain === W4A8_DOMAIN;
}
function attrText(n: NodeProto, name: string): string {
  const a = n.attribute.find((x) => x.name === name);
  return a ? `${a.type}:${a.i}:${new TextDecoder().decode(a.s)}` : '';
}

/** The tensors lie back to back in the streamed export's side file, in this order. */
function contiguousRun(writer: SideFileWriter | undefined, parts: TensorProto[]): boolean {
  if (!writer || !parts.every((t) => isExternal(t) && writer.owns(t))) return false;
  const refs = parts.map((t) => externalRef(t));
  return refs.every((r, i) => r.location === writer.location && r.length === tensorByteSize(parts[i]) && (i === 0 || r.offset === refs[i - 1].offset + refs[i - 1].length!));
}

/**
 * The nodes can be one: plain W4A8MatMuls (no bias or correction), same A and format, outputs read
 * once, arrays inline or (a streamed export) back to back in its side file.
 */
function mergeable(g: Graph, nodes: NodeProto[], writer?: SideFileWriter): 'yes' | 'no' | 'external' {
  if (!nodes.every(isW4A8MatMul)) return 'no';
  const a = nodes[0].input[0];
  const zp = nodes[0].input.length > 3 && nodes[0].input[3] !== '';
  for (const n of nodes) {
    if (n.input[0] !== a || n.input.length > 4 || (n.input.length > 3 && n.input[3] !== '') !== zp) return 'no';
    if (MERGE_ATTRS_EXCEPT_N.some((k) => attrText(n, k) !== attrText(nodes[0], k)) || attrText(n, 'activation').endsWith('swiglu')) return 'no';
    if ((g.readers.get(n.output[0]) ?? []).length !== 1 || g.inputs.has(n.output[0])) return 'no';
    for (const i of n.input.slice(1)) {
      const t = g.inits.get(i);
      if (!t || (g.readers.get(i) ?? []).length !== 1) return 'no';
    }
  }
  for (let i = 1; i < nodes[0].input.length; i++) {
    if (nodes[0].input[i] === '') continue;
    const parts = nodes.map((n) => g.inits.get(n.input[i])!);
    if (parts.some(isExternal) && !contiguousRun(writer, parts)) return 'external';
  }
  return 'yes';
}

/** One W4A8MatMul over the columns of `nodes` (in order), in the first one's place; returns it. */
function mergeNodes(model: OnnxModel, g: Graph, nodes: NodeProto[], output: string, extra: Record<string, string>, writer?: SideFileWriter): NodeProto {
  const graph = mainGraph(model);
  const concat = (index: number): TensorProto => {
    const parts = nodes.map((n) => g.inits.get(n.input[index])!);
    const dims = tensorDims(parts[0]).slice();
    dims[0] = parts.reduce((s, t) => s + tensorDims(t)[0], 0);
    if (isExternal(parts[0])) {
      // A run in the streamed export's side file (mergeable checked it): one reference spanning it.
      const first = externalRef(parts[0]);
      const length = parts.reduce((s, t) => s + externalRef(t).length!, 0);
      const merged = create(TensorProtoSchema, {
        name: `${parts[0].name}_merged`, dataType: parts[0].dataType, dims: dims.map(BigInt), dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: first.location },
          { key: 'offset', value: String(first.offset) },
          { key: 'length', value: String(length) },
        ],
      });
      writer!.adopt(merged);
      return merged;
    }
    const bytes = Buffer.concat(parts.map((t) => tensorRawBytes(g.model, t)));
    return makeTensor(`${parts[0].name}_merged`, parts[0].dataType, dims, bytes);
  };
  const inputs = [nodes[0].input[0]];
  const tensors: TensorProto[] = [];
  for (let i = 1; i < nodes[0].input.length; i++) {
    if (nodes[0].input[i] === '') {
      inputs.push('');
      continue;
    }
    const t = concat(i);
    tensors.push(t);
    inputs.push(t.name);
  }
  const n = nodes.reduce((s, x) => s + Number(x.attribute.find((a) => a.name === 'N')!.i), 0);
  const attrs: Record<string, string | number> = {};
  for (const a of nodes[0].attribute) {
    if (a.name === 'N') continue;
    attrs[a.name] = a.s.length > 0 ? new TextDecoder().decode(a.s) : Number(a.i);
  }
  const merged = makeNode('W4A8MatMul', inputs, [output], { ...attrs, N: n, ...extra }, { name: `${nodes[0].name}_merged`, domain: W4A8_DOMAIN });
  // adapter attach reads this to name the layers a merged node holds (lib/export/adapter.ts).
  merged.docString = `${MERGED_DOC_PREFIX}${nodes.map((x) => x.name).join(', ')}`;
  const old = new Set(nodes.flatMap((x) => x.input.slice(1)));
  const first = Math.min(...nodes.map((x) => graph.node.indexOf(x)));
  graph.node[first] = merged;
  const gone = new Set(nodes);
  graph.node = graph.node.filter((x) => !gone.has(x));
  graph.initializer = graph.initializer.filter((t) => !old.has(t.name));
  graph.initializer.push(...tensors);
  return merged;
}

function mergeProjections(model: OnnxModel, result: DecoderFusion, writer?: SideFileWriter): void {
  const graph = mainGraph(model);
  let g = snapshot(model);
  const tally = (m: 'yes' | 'no' | 'external'): boolean => {
    if (m === 'external') result.projectionsSkipped++;
    return m === 'yes';
  };
  // q, k, v of each fused attention: one packed [.., q | k | v] input.
  for (const att of graph.node.filter((n) => n.opType === 'CachedAttention' && n.domain === W4A8_DOMAIN)) {
    const qkv = att.input.slice(0, 3).map((v) => g.producer.get(v));
    if (qkv.some((n) => n === undefined) || !tally(mergeable(g, qkv as NodeProto[], writer))) continue;
    mergeNodes(model, g, qkv as NodeProto[], `${att.input[0]}_qkv`, {}, writer);
    att.input = [`${att.input[0]}_qkv`, '', '', ...att.input.slice(3)];
    result.projections++;
    g = snapshot(model);
  }
  // The MLP's Mul(Mul(gate, Sigmoid(gate)), up): one node with activation swiglu.
  for (const mul of graph.node.filter((n) => n.opType === 'Mul' && n.domain === '')) {
    for (const side of [0, 1]) {
      const silu = made(g, mul.input[side], 'Mul');
      const up = g.producer.get(mul.input[1 - side]);
      if (!silu || !up) continue;
      const sig = made(g, silu.input[1], 'Sigmoid') ?? made(g, silu.input[0], 'Sigmoid');
      const gateName = sig && other(silu, sig.output[0]);
      if (!sig || !gateName || sig.input[0] !== gateName) continue;
      const gate = g.producer.get(gateName);
      // The gate feeds Sigmoid and the Mul: two readers; mergeable wants one, so check it apart.
      if (!gate || (g.readers.get(gateName) ?? []).length !== 2 || (g.readers.get(silu.output[0]) ?? []).length !== 1) continue;
      const readers = g.readers.get(gateName)!;
      g.readers.set(gateName, [silu]);
      const m = mergeable(g, [gate, up], writer);
      g.readers.set(gateName, readers);
      if (!tally(m)) continue;
      mergeNodes(model, g, [gate, up], mul.output[0], { activation: 'swiglu' }, writer);
      graph.node = graph.node.filter((n) => n !== mul && n !== silu && n !== sig);
      result.projections++;
      g = snapshot(model);
      break;
    }
  }
}
