// Attaches an adapter (lib/adapter) to a model as standard ONNX ops beside each target layer, so
// stock ONNX Runtime runs y = layer(x) + x delta W^T for a quantized layer of any format.
// With delta W [out][in] = s * sum_i A_i kron B_i, A_i [n1][k1], B_i [n2][k2], and x [M, k1 k2]
// seen as X [M, k1, k2], the term's output [M, n1, n2] is A_i X B_i^T:
//   Reshape(x) -> MatMul(., Transpose(B_i)) -> MatMul(A_i, .) -> Sum over i -> Mul(s) -> Reshape -> Add
// The Kronecker product is never materialized; a factor given as a product (w1_a @ w1_b) is a
// MatMul of two initializers, and the transposes are of initializers: ORT folds both at load.
// The branch reads the activation before our activation fake-quant and AWQ's explicit 1/s Mul.
import type { NodeProto } from 'onnx-buf';
import type { Adapter, AdapterDelta, AdapterFactor } from '../adapter/types';
import { makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { initializerMap, producers } from '../onnx/graph';
import { makeFloatTensorLike, makeTensor, replaceInitializer, tensorDims } from '../onnx/tensor';
import { W4A8Error } from '../util/errors';
import { MERGED_DOC_PREFIX } from './fuse_decoder';
import { mainGraph, uniqueName } from './graph_edit';

const LAYER_OPS = new Set(['MatMul', 'MatMulNBits', 'W4A8MatMul', 'Gemm']);

/**
 * The key a layer node or an adapter module is matched by: Optimum's node names
 * (/model/layers.0/self_attn/q_proj/MatMul) and our llama2.c import's (/layers.0/attn/q_proj/MatMul)
 * and HF module names (model.layers.0.self_attn.q_proj) all reduce to layers.0.attn.q_proj.
 */
export function layerKey(name: string): string {
  let s = name.replace(/^\/+/, '').replace(/\/(MatMul|MatMulNBits|W4A8MatMul|Gemm)(_\d+)?$/, '').replace(/\//g, '.');
  if (s.startsWith('base_model.model.')) s = s.slice('base_model.model.'.length);
  if (s.startsWith('model.')) s = s.slice('model.'.length);
  return s.replace(/(^|\.)self_attn\./g, '$1attn.');
}

export interface AdapterTarget {
  delta: AdapterDelta;
  node: NodeProto;
  /** The activation the branch reads. */
  input: string;
  k: number;
  n: number;
  /** The layer's float type (factors are cast to it). */
  dataType: DataType;
}

function layerShape(model: OnnxModel, node: NodeProto, inits: ReturnType<typeof initializerMap>, prod: Map<string, NodeProto>): { k: number; n: number; dataType: DataType } | undefined {
  const attr = (name: string) => node.attribute.find((a) => a.name === name);
  if (node.opType === 'MatMulNBits' || node.opType === 'W4A8MatMul') {
    const k = Number(attr('K')?.i ?? 0), n = Number(attr('N')?.i ?? 0);
    const scales = inits.get(node.input[2]);
    return k > 0 && n > 0 ? { k, n, dataType: scales?.dataType ?? DataType.FLOAT } : undefined;
  }
  let w = inits.get(node.input[1]);
  let dims = w ? tensorDims(w) : undefined;
  let dataType = w?.dataType;
  if (!w) {
    const dq = prod.get(node.input[1]);
    if (dq?.opType !== 'DequantizeLinear') return undefined;
    w = inits.get(dq.input[0]);
    const scale = inits.get(dq.input[1]);
    if (!w || !scale) return undefined;
    dims = tensorDims(w);
    dataType = scale.dataType;
  }
  if (!dims || dims.length !== 2) return undefined;
  const transB = node.opType === 'Gemm' && Number(attr('transB')?.i ?? 0) === 1;
  return { k: transB ? dims[1] : dims[0], n: transB ? dims[0] : dims[1], dataType: dataType ?? DataType.FLOAT };
}

/** The activation before AWQ's explicit Mul by 1/s and our per-token fake-quant (act_quant_graph.ts names). */
function rawInput(model: OnnxModel, x: string, prod: Map<string, NodeProto>): string {
  const g = mainGraph(model);
  for (;;) {
    const p = prod.get(x);
    if (!p) return x;
    if (p.opType === 'Mul' && /\/AwqScale(_\d+)?$/.test(p.name)) {
      x = p.input[0];
      continue;
    }
    const m = /^(.*)\/act_(int8|fp8)(_\d+)?\//.exec(p.name);
    if (!m) return x;
    const prefix = p.name.slice(0, p.name.indexOf('/', m[1].length + 1) + 1);
    const inside = g.node.filter((nd) => nd.name.startsWith(prefix));
    const made = new Set(inside.flatMap((nd) => nd.output));
    const source = inside.flatMap((nd) => nd.input).find((i) => i && !made.has(i) && !i.startsWith(prefix));
    if (!source) return x;
    x = source;
  }
}

/** Which node each delta lands on; refuses modules that match nothing or match with the wrong shape. */
export function matchAdapter(model: OnnxModel, adapter: Adapter): AdapterTarget[] {
  const g = mainGraph(model);
  const inits = initializerMap(model);
  const prod = producers(model);
  const byKey = new Map<string, NodeProto>();
  for (const node of g.node) if (LAYER_OPS.has(node.opType) && node.name) byKey.set(layerKey(node.name), node);
  const missing = adapter.deltas.filter((d) => !byKey.has(layerKey(d.module)));
  // Layers inside a merged W4A8MatMul (q|k|v, gate|up: lib/export/fuse_decoder.ts) have no node of their own.
  for (const node of g.node) {
    if (!node.docString.startsWith(MERGED_DOC_PREFIX)) continue;
    const held = node.docString.slice(MERGED_DOC_PREFIX.length).split(', ').map(layerKey);
    const inside = missing.find((d) => held.includes(layerKey(d.module)));
    if (inside) {
      throw new W4A8Error(`adapter ${adapter.source}: module "${inside.module}" is one of the layers merged into W4A8MatMul "${node.name}" ` +
        '(quantize --format w4a8 merges q|k|v and gate|up); quantize again with --no-merge-projections to attach adapters to those layers');
    }
  }
  if (missing.length > 0) {
    const have = [...byKey.values()].map((n) => n.name).slice(0, 4);
    throw new W4A8Error(`adapter ${adapter.source}: ${missing.length} module(s) match no layer of the model, e.g. ${missing.slice(0, 3).map((d) => `"${d.module}"`).join(', ')}; ` +
      `the model's layers are named like ${have.map((h) => `"${h}"`).join(', ')}`);
  }
  return adapter.deltas.map((delta) => {
    const node = byKey.get(layerKey(delta.module))!;
    const shape = layerShape(model, node, inits, prod);
    if (!shape) throw new W4A8Error(`adapter ${adapter.source}: module "${delta.module}" matches node "${node.name}" (${node.opType}), whose weight is not a constant 2-D matrix`);
    if (shape.k !== delta.inFeatures || shape.n !== delta.outFeatures) {
      throw new W4A8Error(`adapter ${adapter.source}: module "${delta.module}" is [out ${delta.outFeatures}][in ${delta.inFeatures}] but node "${node.name}" maps ${shape.k} inputs to ${shape.n} outputs`);
    }
    return { delta, node, input: rawInput(model, node.input[0], prod), ...shape };
  });
}

function int64s(model: OnnxModel, base: string, values: number[]): string {
  const name = uniqueName(model, base);
  replaceInitializer(model, makeTensor(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  return name;
}

/** Adds every delta of `adapter` to `model` (in place) as a standard-op branch; returns the targets. */
export function attachAdapterToModel(model: OnnxModel, adapter: Adapter, prefix = 'adapter'): AdapterTarget[] {
  const targets = matchAdapter(model, adapter);
  addAdapterBranches(model, targets, prefix);
  return targets;
}

/** Adds the standard-op branch of each matched target (matchAdapter) to `model`, in place. */
export function addAdapterBranches(model: OnnxModel, targets: readonly AdapterTarget[], prefix = 'adapter'): void {
  const g = mainGraph(model);
  // A factor array shared by several layers (Compacter's A_i) becomes one initializer.
  const shared = new Map<Float32Array, string>();
  for (const t of targets) {
    const { delta, node } = t;
    const y = node.output[0];
    const tag = uniqueName(model, `${y}/${prefix}`);
    const nodes: NodeProto[] = [];
    const cast = (name: string): string => {
      if (t.dataType === DataType.FLOAT) return name;
      const out = uniqueName(model, `${name}/cast`);
      nodes.push(makeNode('Cast', [name], [out], { to: t.dataType }, { name: uniqueName(model, `${name}/Cast`) }));
      return out;
    };
    const init = (values: Float32Array, dims: number[], what: string): string => {
      const known = shared.get(values);
      if (known) return known;
      const name = uniqueName(model, `${tag}/${what}`);
      replaceInitializer(model, makeFloatTensorLike(name, DataType.FLOAT, dims, values));
      shared.set(values, name);
      return name;
    };
    const factor = (f: AdapterFactor, what: string): string => {
      if (f.kind === 'dense') return cast(init(f.values, [f.rows, f.cols], what));
      const out = uniqueName(model, `${tag}/${what}`);
      nodes.push(makeNode('MatMul', [cast(init(f.left, [f.rows, f.rank], `${what}_left`)), cast(init(f.right, [f.rank, f.cols], `${what}_right`))], [out], {}, { name: `${out}/MatMul` }));
      return out;
    };
    const main = uniqueName(model, `${y}/base`);
    const x3 = uniqueName(model, `${tag}/x`);
    nodes.push(makeNode('Reshape', [t.input, int64s(model, `${tag}/x_shape`, [-1, delta.terms[0].a.cols, delta.terms[0].b.cols])], [x3], {}, { name: `${tag}/Reshape` }));
    const outs: string[] = [];
    delta.terms.forEach((term, i) => {
      const a = factor(term.a, `a${i}`);
      const b = factor(term.b, `b${i}`);
      const bt = uniqueName(model, `${tag}/b${i}_t`);
      const xb = uniqueName(model, `${tag}/xb${i}`);
      const axb = uniqueName(model, `${tag}/axb${i}`);
      nodes.push(makeNode('Transpose', [b], [bt], { perm: [1, 0] }, { name: `${bt}/Transpose` }));
      nodes.push(makeNode('MatMul', [x3, bt], [xb], {}, { name: `${xb}/MatMul` }));
      nodes.push(makeNode('MatMul', [a, xb], [axb], {}, { name: `${axb}/MatMul` }));
      outs.push(axb);
    });
    const summed = uniqueName(model, `${tag}/sum`);
    nodes.push(makeNode(outs.length === 1 ? 'Identity' : 'Sum', outs, [summed], {}, { name: `${tag}/Terms` }));
    const scaleName = uniqueName(model, `${tag}/scale`);
    replaceInitializer(model, makeFloatTensorLike(scaleName, DataType.FLOAT, [], Float32Array.of(delta.scale)));
    const scaled = uniqueName(model, `${tag}/scaled`);
    nodes.push(makeNode('Mul', [summed, cast(scaleName)], [scaled], {}, { name: `${tag}/Scale` }));
    const shape = uniqueName(model, `${tag}/shape`);
    const corr = uniqueName(model, `${tag}/delta`);
    nodes.push(makeNode('Shape', [main], [shape], {}, { name: `${tag}/Shape` }));
    nodes.push(makeNode('Reshape', [scaled, shape], [corr], {}, { name: `${tag}/ReshapeOut` }));
    nodes.push(makeNode('Add', [main, corr], [y], {}, { name: `${tag}/Add` }));
    node.output[0] = main;
    // The branch goes after the layer and after whatever it reads (a compensation branch may follow the layer).
    const at = g.node.indexOf(node);
    if (at < 0) throw new Error(`node "${node.name}" is not in the main graph`);
    g.node.splice(at + 1, 0, ...nodes);
  }
}
