// A summary of a model for `w4a8 inspect`: opsets, op counts, whether weights live in external
// data, and each weight initializer with the layer that uses it.
import type { NodeProto } from 'onnx-buf';
import { dataTypeName, isFloatType } from './dtype';
import { isExternal } from './external_data';
import { consumers, initializerMap, quantizableLayerOf } from './graph';
import { hasExternalData, type OnnxModel } from './model';
import { tensorByteSize, tensorDims } from './tensor';

export interface WeightSummary {
  name: string;
  /** The node using it (the MatMul/Gemm when there is one), by name, or "OpType#index" if unnamed. */
  node: string;
  shape: number[];
  dtype: string;
  external: boolean;
  /** A MatMul/Gemm B input, constant, 2-D, K >= 16. */
  quantizable: boolean;
}

export interface ModelSummary {
  /** Domain ("ai.onnx" for the default one) -> opset version. */
  opsets: Record<string, number>;
  /** Op type ("Domain.OpType" outside the default domain) -> count in the main graph. */
  ops: Record<string, number>;
  externalData: boolean;
  weights: WeightSummary[];
}

export function opKey(node: NodeProto): string {
  return node.domain === '' || node.domain === 'ai.onnx' ? node.opType : `${node.domain}.${node.opType}`;
}

/**
 * Weights are the main graph's float initializers of rank >= 2 (matrices, embeddings, convolution
 * kernels); vectors such as biases and norms are left out.
 */
export function summarizeModel(model: OnnxModel): ModelSummary {
  const graph = model.proto.graph;
  const nodes = graph?.node ?? [];
  const opsets: Record<string, number> = {};
  for (const o of model.proto.opsetImport) opsets[o.domain === '' ? 'ai.onnx' : o.domain] = Number(o.version);
  const ops: Record<string, number> = {};
  for (const node of nodes) ops[opKey(node)] = (ops[opKey(node)] ?? 0) + 1;

  const inits = initializerMap(model);
  const graphInputs = new Set((graph?.input ?? []).map((v) => v.name));
  const users = consumers(model);
  const nodeIndex = new Map(nodes.map((n, i) => [n, i]));
  const nodeLabel = (n: NodeProto): string => n.name || `${n.opType}#${nodeIndex.get(n)}`;

  const weights: WeightSummary[] = [];
  for (const t of graph?.initializer ?? []) {
    const dims = tensorDims(t);
    if (!isFloatType(t.dataType) || dims.length < 2) continue;
    const readers = users.get(t.name) ?? [];
    const layerNode = readers.find((n) => quantizableLayerOf(n, inits, graphInputs)?.weightName === t.name);
    const shown = layerNode ?? readers[0];
    weights.push({
      name: t.name,
      node: shown ? nodeLabel(shown) : '',
      shape: dims,
      dtype: dataTypeName(t.dataType),
      external: isExternal(t),
      quantizable: layerNode !== undefined,
    });
  }
  return { opsets, ops, externalData: hasExternalData(model), weights };
}

/** Total bytes of the listed weights (for the human summary line). */
export function weightBytes(model: OnnxModel, names: string[]): number {
  const inits = initializerMap(model);
  return names.reduce((sum, n) => {
    const t = inits.get(n);
    return sum + (t ? (tensorByteSize(t) ?? 0) : 0);
  }, 0);
}
