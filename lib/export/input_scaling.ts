// AWQ's per-input-channel scale s: the quantized weights hold diag(s) W, so the activation must
// become x / s. Folded into the preceding normalization weight when the planner found one
// (no extra op at run time), else an explicit Mul by 1/s right before the layers.
import { makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { makeFloatTensorLike, replaceInitializer, tensorDims, tensorToFloat32 } from '../onnx/tensor';
import type { InputScaling, QuantizedLayer } from '../quant/types';
import { divideVectors } from '../native/tensor_layout';
import { firstInGraph, insertBefore, rewireInputs, uniqueName } from './graph_edit';

/**
 * Applies every scaling; returns, per original input name, the value the quantized layers now
 * read (unchanged when folded).
 */
export async function applyInputScalings(model: OnnxModel, scalings: InputScaling[], layers: QuantizedLayer[], elemTypeOf: (input: string) => DataType): Promise<Map<string, string>> {
  const readsNow = new Map<string, string>();
  for (const sc of scalings) {
    const nodes = layers.filter((l) => l.layer.input === sc.input).map((l) => l.layer.node);
    if (sc.fold) {
      const w = sc.fold.weight;
      const values = tensorToFloat32(model, w);
      const folded = await divideVectors(values, sc.scale);
      replaceInitializer(model, makeFloatTensorLike(w.name, w.dataType, tensorDims(w), folded));
      readsNow.set(sc.input, sc.input);
      continue;
    }
    const type = elemTypeOf(sc.input);
    const invName = uniqueName(model, `${sc.input}/awq_inv_scale`);
    const outName = uniqueName(model, `${sc.input}/awq_scaled`);
    replaceInitializer(model, makeFloatTensorLike(invName, type === DataType.FLOAT16 || type === DataType.BFLOAT16 ? type : DataType.FLOAT, [sc.k], sc.inverseScale));
    const first = firstInGraph(model, nodes);
    insertBefore(model, first, [makeNode('Mul', [sc.input, invName], [outName], {}, { name: uniqueName(model, `${sc.input}/AwqScale`) })]);
    rewireInputs(nodes, sc.input, outName);
    readsNow.set(sc.input, outName);
  }
  // Layers without scaling read their input unchanged.
  for (const l of layers) if (!readsNow.has(l.layer.input)) readsNow.set(l.layer.input, l.layer.input);
  return readsNow;
}
