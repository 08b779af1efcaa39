// Which layers get quantized and how they group: layers reading the same input tensor (q, k, v;
// gate, up) share calibration statistics and, under AWQ, one scale vector.
import type { NodeProto, TensorProto } from 'onnx-buf';
import type { OnnxModel } from '../onnx/model';
import { consumers, findQuantizableLayers, initializerMap, producers, type QuantizableLayer } from '../onnx/graph';
import { tensorDims } from '../onnx/tensor';
import { GlobSet } from './glob';
import { UsageError } from '../util/errors';

export interface PlannedLayer extends QuantizableLayer {
  /** Node name, or the weight name when the node has none. */
  name: string;
  /** The activation input of the MatMul/Gemm. */
  input: string;
}

export interface InputGroup {
  input: string;
  k: number;
  layers: PlannedLayer[];
}

export interface LayerPlan {
  all: QuantizableLayer[];
  layers: PlannedLayer[];
  excluded: { name: string; reason: string }[];
  groups: InputGroup[];
}

export function layerName(node: NodeProto, weightName: string): string {
  return node.name !== '' ? node.name : weightName;
}

/**
 * The quantizable layers minus the excluded ones. By default the layer whose output is a graph
 * output (the logits projection) stays in full precision: it is the most sensitive one.
 */
export function planLayers(model: OnnxModel, exclude: string[], keepLogits = true): LayerPlan {
  const all = findQuantizableLayers(model);
  const globs = new GlobSet(exclude);
  const graphOutputs = new Set((model.proto.graph?.output ?? []).map((o) => o.name));
  const layers: PlannedLayer[] = [];
  const excluded: { name: string; reason: string }[] = [];
  for (const l of all) {
    const name = layerName(l.node, l.weightName);
    if (globs.matches(name, l.weightName)) excluded.push({ name, reason: '--exclude' });
    else if (keepLogits && l.node.output.some((o) => graphOutputs.has(o))) excluded.push({ name, reason: 'produces a graph output (logits)' });
    else layers.push({ ...l, name, input: l.node.input[0] });
  }
  const unmatched = globs.unmatched();
  if (unmatched.length > 0) {
    const names = all.slice(0, 5).map((l) => layerName(l.node, l.weightName));
    throw new UsageError(
      `--exclude ${unmatched.map((g) => `"${g}"`).join(', ')} matches no layer; layer names look like ${names.join(', ')}${all.length > names.length ? `, ... (${all.length} layers; w4a8 inspect lists them)` : ''}`,
    );
  }
  const byInput = new Map<string, InputGroup>();
  for (const l of layers) {
    const g = byInput.get(l.input);
    if (g) g.layers.push(l);
    else byInput.set(l.input, { input: l.input, k: l.k, layers: [l] });
  }
  return { all, layers, excluded, groups: [...byInput.values()] };
}

/**
 * Where AWQ's 1/s can be folded: the group's input is the output of a Mul by a constant 1-D
 * initializer of length K (RMSNorm's weight in the llama2.c import), read by nothing but the
 * group's layers, and the initializer is used by that Mul only. Else undefined: the exporter
 * then inserts an explicit Mul node.
 */
export function foldTarget(model: OnnxModel, group: InputGroup): { mul: NodeProto; weight: TensorProto } | undefined {
  const producer = producers(model).get(group.input);
  if (!producer || producer.opType !== 'Mul' || (producer.domain !== '' && producer.domain !== 'ai.onnx')) return undefined;
  const cons = consumers(model);
  const readers = cons.get(group.input) ?? [];
  const groupNodes = new Set(group.layers.map((l) => l.node));
  if (readers.some((n) => !groupNodes.has(n))) return undefined;
  if ((model.proto.graph?.output ?? []).some((o) => o.name === group.input)) return undefined;
  const inits = initializerMap(model);
  for (const name of producer.input) {
    const t = inits.get(name);
    if (!t) continue;
    const dims = tensorDims(t);
    if (dims.length !== 1 || dims[0] !== group.k) continue;
    if ((cons.get(name) ?? []).length !== 1) continue;
    return { mul: producer, weight: t };
  }
  return undefined;
}
