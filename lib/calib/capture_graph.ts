// ONNX Runtime cannot fetch intermediate tensors by name, so calibration runs a copy of the
// model whose graph also outputs the input of every target MatMul. Only the output list is
// copied: the initializers (and their bytes) are shared with the original model.
import { create } from '@bufbuild/protobuf';
import { TypeProto_TensorSchema, TypeProtoSchema, ValueInfoProtoSchema, type ValueInfoProto } from 'onnx-buf';
import type { OnnxModel } from '../onnx/model';
import type { DataType } from '../onnx/dtype';

/** A value info with an element type and no shape (rank unknown): ORT infers it. */
function untypedShapeOutput(name: string, elemType: DataType): ValueInfoProto {
  const tensorType = create(TypeProto_TensorSchema, { elemType });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

/** The element type the graph declares for `name` (value_info, inputs, outputs), if any. */
export function declaredElemType(model: OnnxModel, name: string): DataType | undefined {
  const g = model.proto.graph;
  if (!g) return undefined;
  for (const vi of [...g.valueInfo, ...g.input, ...g.output]) {
    if (vi.name === name && vi.type?.value.case === 'tensorType') return vi.type.value.value.elemType as DataType;
  }
  return undefined;
}

/**
 * A shallow copy of `model` whose graph outputs additionally include `names` (each with the
 * element type the graph declares for it, else `fallbackType`). The original is not modified.
 */
export function withCaptureOutputs(model: OnnxModel, names: string[], fallbackType: (name: string) => DataType): OnnxModel {
  const graph = model.proto.graph;
  if (!graph) throw new Error('withCaptureOutputs: the model has no graph');
  const existing = new Set(graph.output.map((o) => o.name));
  const extra = names.filter((n) => !existing.has(n)).map((n) => untypedShapeOutput(n, declaredElemType(model, n) ?? fallbackType(n)));
  const newGraph = { ...graph, output: [...graph.output, ...extra] };
  return { ...model, proto: { ...model.proto, graph: newGraph } };
}
