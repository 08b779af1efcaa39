// Visit every TensorProto a model holds: graph initializers, sparse initializers, tensors in
// node attributes (Constant values), subgraphs of If/Loop/Scan, functions and training info.
// External data may sit behind any of them, so validation and saving must see them all.
import type { GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto } from 'onnx-buf';

export type TensorVisitor = (t: TensorProto, where: { isGraphInitializer: boolean }) => void;

function visitSparse(s: SparseTensorProto | undefined, fn: TensorVisitor): void {
  if (!s) return;
  if (s.values) fn(s.values, { isGraphInitializer: false });
  if (s.indices) fn(s.indices, { isGraphInitializer: false });
}

function visitNodes(nodes: NodeProto[], fn: TensorVisitor): void {
  for (const node of nodes) {
    for (const a of node.attribute) {
      if (a.t) fn(a.t, { isGraphInitializer: false });
      for (const t of a.tensors) fn(t, { isGraphInitializer: false });
      visitSparse(a.sparseTensor, fn);
      for (const s of a.sparseTensors) visitSparse(s, fn);
      if (a.g) visitGraph(a.g, fn, false);
      for (const g of a.graphs) visitGraph(g, fn, false);
    }
  }
}

function visitGraph(g: GraphProto, fn: TensorVisitor, isMain: boolean): void {
  for (const t of g.initializer) fn(t, { isGraphInitializer: isMain });
  for (const s of g.sparseInitializer) visitSparse(s, fn);
  visitNodes(g.node, fn);
}

/** Calls `fn` on every tensor in the model; `isGraphInitializer` marks the main graph's initializers. */
export function forEachTensor(proto: ModelProto, fn: TensorVisitor): void {
  if (proto.graph) visitGraph(proto.graph, fn, true);
  for (const f of proto.functions) visitNodes(f.node, fn);
  for (const ti of proto.trainingInfo) {
    if (ti.initialization) visitGraph(ti.initialization, fn, false);
    if (ti.algorithm) visitGraph(ti.algorithm, fn, false);
  }
}
