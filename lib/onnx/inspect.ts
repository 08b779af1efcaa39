// A summary of a model for `w4a8 inspect`: opsets, op counts, whether weights live in external
// data, and each weight initializer with the layer that uses it.
import type { NodeProto } from 'onnx-buf';
import { DataType, dataTypeName, isFloatType } from './dtype';
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

/**
 * Initializer suffixes of the error-correction factors that `quantize --compensate` writes beside a
 * layer's weight (<weight>_lorc_a [K][r], _lorc_b [r][N]; <weight>_kron_a [R][k1][n1], _kron_b [R][k2][n2]).
 */
export const CORRECTION_SUFFIXES = { lowRank: ['_lorc_a', '_lorc_b'], kronecker: ['_kron_a', '_kron_b'] } as const;

/** One layer's correction: its factors' shapes and parameter count. */
export interface CorrectionSummary {
  /** The quantized layer's weight name the factors belong to. */
  weight: string;
  kind: 'low-rank' | 'kronecker';
  /** Rank, or number of Kronecker terms. */
  rank: number;
  shapes: number[][];
  params: number;
}

export interface ModelSummary {
  /** Domain ("ai.onnx" for the default one) -> opset version. */
  opsets: Record<string, number>;
  /** Op type ("Domain.OpType" outside the default domain) -> count in the main graph. */
  ops: Record<string, number>;
  externalData: boolean;
  weights: WeightSummary[];
  corrections: CorrectionSummary[];
  adapters: AdapterSummary[];
}

/**
 * Factors `adapter attach` writes beside a layer: initializers <layer output>/adapter[_n]/a<i>, b<i>
 * (or a<i>_left/_right, b<i>_left/_right for a factor given as a product). A factor shared by
 * several layers (Compacter's rule) is stored, and counted, once: under the first of them.
 */
export const ADAPTER_FACTOR_PATTERN = /^(.*\/adapter(?:_\d+)?)\/([ab])(\d+)(?:_left|_right)?$/;
/** Factors `adapter attach` fused into a W4A8MatMul: <layer output>/adapter[_n]/fused_a [R][k1][n1], fused_b [R][k2][n2]. */
export const FUSED_ADAPTER_FACTOR_PATTERN = /^(.*\/adapter(?:_\d+)?)\/fused_([ab])$/;

/** One adapted layer: its Kronecker terms, factor shapes and parameter count. */
export interface AdapterSummary {
  /** The adapted layer's node name (or its output tensor when the node is not found). */
  layer: string;
  terms: number;
  shapes: number[][];
  params: number;
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
  return { opsets, ops, externalData: hasExternalData(model), weights, corrections: summarizeCorrections(model), adapters: summarizeAdapters(model) };
}

function summarizeAdapters(model: OnnxModel): AdapterSummary[] {
  const nodes = model.proto.graph?.node ?? [];
  const byTag = new Map<string, AdapterSummary>();
  for (const t of model.proto.graph?.initializer ?? []) {
    const fused = FUSED_ADAPTER_FACTOR_PATTERN.exec(t.name);
    if (fused) {
      const dims = tensorDims(t);
      let s = byTag.get(fused[1]);
      if (!s) {
        const layer = nodes.find((n) => n.input.includes(t.name));
        s = { layer: layer?.name || fused[1], terms: dims[0] ?? 0, shapes: [], params: 0 };
        byTag.set(fused[1], s);
      }
      s.shapes.push(dims);
      s.params += dims.reduce((x, y) => x * y, 1);
      continue;
    }
    const m = ADAPTER_FACTOR_PATTERN.exec(t.name);
    if (!m) continue;
    const dims = tensorDims(t);
    let s = byTag.get(m[1]);
    if (!s) {
      // The branch's Add reads the layer's renamed output; its producer is the layer.
      const add = nodes.find((n) => n.name === `${m[1]}/Add`);
      const layer = add ? nodes.find((n) => n.output.includes(add.input[0])) : undefined;
      s = { layer: layer?.name || m[1], terms: 0, shapes: [], params: 0 };
      byTag.set(m[1], s);
    }
    s.terms = Math.max(s.terms, Number(m[3]) + 1);
    s.shapes.push(dims);
    s.params += dims.reduce((x, y) => x * y, 1);
  }
  return [...byTag.values()];
}

function summarizeCorrections(model: OnnxModel): CorrectionSummary[] {
  const inits = initializerMap(model);
  const out: CorrectionSummary[] = [];
  for (const [kind, [sa, sb]] of [['low-rank', CORRECTION_SUFFIXES.lowRank], ['kronecker', CORRECTION_SUFFIXES.kronecker]] as const) {
    for (const [name, a] of inits) {
      if (!name.endsWith(sa)) continue;
      const weight = name.slice(0, -sa.length);
      const b = inits.get(weight + sb);
      if (!b) continue;
      const da = tensorDims(a);
      const db = tensorDims(b);
      const count = (d: number[]) => d.reduce((x, y) => x * y, 1);
      // int8 low-rank factors (formats.h Int8Rows) store U transposed, [r, K].
      const rank = kind === 'low-rank' && a.dataType !== DataType.INT8 ? (da[1] ?? 0) : (da[0] ?? 0);
      out.push({ weight, kind, rank, shapes: [da, db], params: count(da) + count(db) });
    }
  }
  return out;
}

/** Total bytes of the listed weights (for the human summary line). */
export function weightBytes(model: OnnxModel, names: string[]): number {
  const inits = initializerMap(model);
  return names.reduce((sum, n) => {
    const t = inits.get(n);
    return sum + (t ? (tensorByteSize(t) ?? 0) : 0);
  }, 0);
}
