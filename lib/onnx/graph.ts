// Graph queries: who produces and who consumes each value, and which MatMul/Gemm layers carry
// a constant 2-D weight that the quantizer can pack to 4 bits.
import type { NodeProto, TensorProto } from 'onnx-buf';
import { MIN_GROUP_SIZE } from '../native/formats';
import { DataType, isFloatType } from './dtype';
import { isExternal } from './external_data';
import type { OnnxModel } from './model';
import { tensorDims } from './tensor';

export function initializerMap(model: OnnxModel): Map<string, TensorProto> {
  return new Map((model.proto.graph?.initializer ?? []).map((t) => [t.name, t]));
}

/** Value name -> the main-graph nodes reading it, in graph order. */
export function consumers(model: OnnxModel): Map<string, NodeProto[]> {
  const map = new Map<string, NodeProto[]>();
  for (const node of model.proto.graph?.node ?? []) {
    for (const input of node.input) {
      if (input === '') continue; // an omitted optional input
      const list = map.get(input);
      if (list) {
        if (!list.includes(node)) list.push(node);
      } else map.set(input, [node]);
    }
  }
  return map;
}

/** Value name -> the main-graph node writing it. */
export function producers(model: OnnxModel): Map<string, NodeProto> {
  const map = new Map<string, NodeProto>();
  for (const node of model.proto.graph?.node ?? []) {
    for (const output of node.output) if (output !== '') map.set(output, node);
  }
  return map;
}

export interface QuantizableLayer {
  node: NodeProto;
  weightName: string;
  /** Input features (the reduction dimension). */
  k: number;
  /** Output features. */
  n: number;
  dataType: DataType;
  external: boolean;
  /** Gemm with transB=1: the weight is stored [N, K]. */
  transB?: boolean;
}

/** Groups smaller than this do not fit a block of the 4-bit format, and such layers are tiny. */
export const MIN_QUANTIZABLE_K = MIN_GROUP_SIZE;

function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : fallback;
}

/**
 * The weight layer a node forms, if it is a default-domain MatMul or Gemm whose B input is a
 * float initializer of rank 2 with K >= 16. A weight that is also a graph input can be
 * overridden at run time, so it is not constant and not listed.
 */
export function quantizableLayerOf(node: NodeProto, inits: Map<string, TensorProto>, graphInputs: Set<string>): QuantizableLayer | undefined {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  if (node.opType !== 'MatMul' && node.opType !== 'Gemm') return undefined;
  const weightName = node.input[1];
  const w = weightName === undefined ? undefined : inits.get(weightName);
  if (!w || graphInputs.has(w.name) || !isFloatType(w.dataType)) return undefined;
  const dims = tensorDims(w);
  if (dims.length !== 2) return undefined;
  const transB = node.opType === 'Gemm' && intAttr(node, 'transB', 0) !== 0;
  const [k, n] = transB ? [dims[1], dims[0]] : [dims[0], dims[1]];
  if (k < MIN_QUANTIZABLE_K || n < 1) return undefined;
  const layer: QuantizableLayer = { node, weightName: w.name, k, n, dataType: w.dataType, external: isExternal(w) };
  if (node.opType === 'Gemm') layer.transB = transB;
  return layer;
}

/** MatMul/Gemm nodes of the main graph whose B is a constant 2-D float initializer with K >= 16. */
export function findQuantizableLayers(model: OnnxModel): QuantizableLayer[] {
  const inits = initializerMap(model);
  const graphInputs = new Set((model.proto.graph?.input ?? []).map((v) => v.name));
  const layers: QuantizableLayer[] = [];
  for (const node of model.proto.graph?.node ?? []) {
    const layer = quantizableLayerOf(node, inits, graphInputs);
    if (layer) layers.push(layer);
  }
  return layers;
}
