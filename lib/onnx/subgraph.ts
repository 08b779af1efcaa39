// A part of a model as a model of its own: some of its nodes, the values they read from outside
// as graph inputs, chosen values as graph outputs. Sequential calibration runs each decoder
// block this way, fed the previous block's outputs. Initializers are shared with the original
// (external ones keep pointing into its side files, which ONNX Runtime maps itself); nodes are
// copied, so editing the part (exporting a quantized block into it) leaves the original as it was.
import { create } from '@bufbuild/protobuf';
import { TypeProto_TensorSchema, TypeProtoSchema, ValueInfoProtoSchema, type NodeProto, type ValueInfoProto } from 'onnx-buf';
import type { DataType } from './dtype';
import type { OnnxModel } from './model';

export interface Subgraph {
  model: OnnxModel;
  /** The copy of each original node in the part. */
  nodeCopy: Map<NodeProto, NodeProto>;
  /** Values read from outside that are not graph inputs of the original (fed by the caller). */
  carriedInputs: string[];
}

function typedValue(name: string, elemType: DataType): ValueInfoProto {
  const tensorType = create(TypeProto_TensorSchema, { elemType });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

/**
 * The part of `model` made of `nodes` (in graph order) with `outputs` as its graph outputs (no
 * declared type: ONNX Runtime infers it). A value read from outside that is not an initializer is
 * a graph input: the original's declaration for its graph inputs, else typed by `inputType`.
 */
export function extractSubgraph(model: OnnxModel, nodes: NodeProto[], outputs: string[], inputType: (name: string) => DataType | undefined): Subgraph {
  const graph = model.proto.graph;
  if (!graph) throw new Error('extractSubgraph: the model has no graph');
  const nodeCopy = new Map<NodeProto, NodeProto>();
  for (const n of nodes) nodeCopy.set(n, { ...n, input: [...n.input], output: [...n.output] });
  const produced = new Set(nodes.flatMap((n) => n.output));
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const declaredInputs = new Map(graph.input.map((v) => [v.name, v]));
  const usedInits = new Set<string>();
  const inputs: ValueInfoProto[] = [];
  const carriedInputs: string[] = [];
  const seen = new Set<string>();
  for (const n of nodes) {
    for (const v of n.input) {
      if (v === '' || produced.has(v) || seen.has(v)) continue;
      seen.add(v);
      if (initializers.has(v)) usedInits.add(v);
      else if (declaredInputs.has(v)) inputs.push(declaredInputs.get(v)!);
      else {
        const t = inputType(v);
        if (t === undefined) throw new Error(`extractSubgraph: no element type known for the input "${v}"`);
        inputs.push(typedValue(v, t));
        carriedInputs.push(v);
      }
    }
  }
  const newGraph = {
    ...graph,
    node: [...nodeCopy.values()],
    input: inputs,
    output: outputs.map((name) => create(ValueInfoProtoSchema, { name })),
    initializer: graph.initializer.filter((t) => usedInits.has(t.name)),
    valueInfo: graph.valueInfo.filter((v) => produced.has(v.name) && !outputs.includes(v.name)),
  };
  return { model: { proto: { ...model.proto, graph: newGraph }, dir: model.dir }, nodeCopy, carriedInputs };
}
