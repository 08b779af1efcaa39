// An fp16 graph rewritten to compute in fp32, for `--format w4a8`. ONNX Runtime's CPU provider has
// fp16 kernels for few ops and runs the rest between inserted Casts, and the fused decoder ops
// (fuse_decoder.ts) are fp32: an fp16 graph kept its ~60 standard ops per layer plus those casts and
// decoded ~1.4x slower than the same model in fp32 (docs/BENCHMARKS.md, "fp16 graphs"). W4A8MatMul
// computes in fp32 whatever its input type, so widening the activations loses nothing and makes the
// graph fusable.
//
// Every FLOAT16 becomes FLOAT: graph inputs, outputs and value_info (so the cache and the logits
// become fp32), Cast targets, dtype attributes, Constant / ConstantOfShape values and initializers,
// in subgraphs too. One exception keeps the file and the memory small: the token embedding (a table
// read only by Gather at input_ids) stays fp16 and each Gather's rows are cast after it.
import { AttributeProto_AttributeType as AttrType, type AttributeProto, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from 'onnx-buf';
import { makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { makeTensor, replaceInitializer, tensorDims, tensorToFloat32 } from '../onnx/tensor';

export interface Float16Widening {
  /** fp16 initializers (all graphs) now stored as fp32. */
  initializers: number;
  /** fp16 token embeddings (read only by Gather at input_ids), kept fp16 with a Cast after each Gather. */
  gatherTables: number;
  /** Graph inputs, outputs and value_info entries retyped from fp16 to fp32. */
  values: number;
  /** Node attributes changed: Cast targets, dtype attributes, constant tensors. */
  attributes: number;
}

/** Attributes that name an output element type (Cast's `to`, RandomNormal's `dtype`, ...). */
const TYPE_ATTRIBUTES = new Set(['to', 'dtype']);

const isDefaultDomain = (n: NodeProto) => n.domain === '' || n.domain === 'ai.onnx';

/** The Cast to fp32 that already follows a Gather (a widened embedding), if there is one. */
function castAfter(g: GraphProto, gather: NodeProto): NodeProto | undefined {
  const readers = g.node.filter((n) => n.input.includes(gather.output[0]));
  const c = readers[0];
  return readers.length === 1 && c.opType === 'Cast' && isDefaultDomain(c) && c.attribute.some((a) => a.name === 'to' && Number(a.i) === DataType.FLOAT) ? c : undefined;
}

/**
 * True when the main graph computes in fp16: an fp16 input or output, or an fp16 initializer other
 * than an embedding already widened (read only by Gathers each followed by a Cast to fp32).
 */
export function hasFloat16(model: OnnxModel): boolean {
  const graph = model.proto.graph;
  if (!graph) return false;
  const typed = (v: ValueInfoProto) => v.type?.value.case === 'tensorType' && v.type.value.value.elemType === DataType.FLOAT16;
  if (graph.input.some(typed) || graph.output.some(typed)) return true;
  return graph.initializer.some((t) => {
    if (t.dataType !== DataType.FLOAT16) return false;
    const readers = graph.node.filter((n) => n.input.includes(t.name));
    return readers.length === 0 || !readers.every((n) => n.opType === 'Gather' && n.input[0] === t.name && castAfter(graph, n));
  });
}

function widenedTensor(model: OnnxModel, t: TensorProto): TensorProto {
  // Same name and dims; raw fp32 bytes in the proto (the save decides what goes to external data).
  return makeTensor(t.name, DataType.FLOAT, tensorDims(t), tensorToFloat32(model, t));
}

function subgraphsOf(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute) {
    if (a.g) out.push(a.g);
    out.push(...a.graphs);
  }
  return out;
}

function forEachGraph(g: GraphProto, fn: (g: GraphProto, isMain: boolean) => void, isMain = true): void {
  fn(g, isMain);
  for (const n of g.node) for (const s of subgraphsOf(n)) forEachGraph(s, fn, false);
}

function widenValue(v: ValueInfoProto): boolean {
  if (v.type?.value.case !== 'tensorType' || v.type.value.value.elemType !== DataType.FLOAT16) return false;
  v.type.value.value.elemType = DataType.FLOAT;
  return true;
}

function widenAttribute(model: OnnxModel, a: AttributeProto): number {
  if (a.type === AttrType.INT && TYPE_ATTRIBUTES.has(a.name) && Number(a.i) === DataType.FLOAT16) {
    a.i = BigInt(DataType.FLOAT);
    return 1;
  }
  let changed = 0;
  if (a.type === AttrType.TENSOR && a.t?.dataType === DataType.FLOAT16) {
    a.t = widenedTensor(model, a.t);
    changed++;
  }
  if (a.type === AttrType.TENSORS) {
    a.tensors = a.tensors.map((t) => {
      if (t.dataType !== DataType.FLOAT16) return t;
      changed++;
      return widenedTensor(model, t);
    });
  }
  return changed;
}

/**
 * Rewrites the model's fp16 computation in fp32, in place (see the file's comment). External fp16
 * tensors are read through the model's folder; the widened ones are held in memory until saved.
 */
export function widenFloat16(model: OnnxModel): Float16Widening {
  const result: Float16Widening = { initializers: 0, gatherTables: 0, values: 0, attributes: 0 };
  const main = model.proto.graph;
  if (!main) return result;

  // Readers of each value anywhere in the model (a subgraph may read the main graph's tables).
  const readers = new Map<string, { node: NodeProto; index: number }[]>();
  forEachGraph(main, (g) => {
    for (const node of g.node)
      node.input.forEach((name, index) => {
        if (name === '') return;
        const list = readers.get(name) ?? [];
        list.push({ node, index });
        readers.set(name, list);
      });
  });
  // The token embedding: read only as Gather's data, at the ids the model is fed. (Other tables,
  // such as rotary cos / sin read at position_ids, are small and the fused attention wants fp32.)
  const ids = new Set(main.input.filter((v) => v.name === 'input_ids').map((v) => v.name));
  const embeddingOnly = (t: TensorProto) => {
    const r = readers.get(t.name) ?? [];
    return r.length > 0 && r.every(({ node, index }) => node.opType === 'Gather' && isDefaultDomain(node) && index === 0 && ids.has(node.input[1]));
  };

  const taken = new Set<string>();
  forEachGraph(main, (g) => {
    for (const v of g.node.flatMap((n) => n.output)) taken.add(v);
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) taken.add(v.name);
  });
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  forEachGraph(main, (g, isMain) => {
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) if (widenValue(v)) result.values++;
    for (const node of g.node) for (const a of node.attribute) result.attributes += widenAttribute(model, a);

    for (const t of [...g.initializer]) {
      if (t.dataType !== DataType.FLOAT16) continue;
      if (isMain && embeddingOnly(t)) {
        result.gatherTables++;
        continue;
      }
      const wide = widenedTensor(model, t);
      if (isMain) replaceInitializer(model, wide);
      else g.initializer[g.initializer.indexOf(t)] = wide;
      result.initializers++;
    }
  });

  // Each Gather of a kept fp16 table: rows come out fp16, a Cast right after widens them.
  const kept = new Set(main.initializer.filter((t) => t.dataType === DataType.FLOAT16).map((t) => t.name));
  if (kept.size > 0) {
    forEachGraph(main, (g) => {
      const nodes: NodeProto[] = [];
      for (const node of g.node) {
        nodes.push(node);
        if (node.opType !== 'Gather' || !kept.has(node.input[0]) || castAfter(g, node)) continue;
        const wide = node.output[0];
        node.output[0] = fresh(`${wide}/fp16`);
        nodes.push(makeNode('Cast', [node.output[0]], [wide], { to: DataType.FLOAT }, { name: fresh(`${node.name || wide}/to_fp32`) }));
      }
      g.node = nodes;
    });
  }
  return result;
}
