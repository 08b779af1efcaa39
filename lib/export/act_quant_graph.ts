// Per-token dynamic activation quantization written with standard ONNX ops, for the `sim`
// export. The numerics follow the native definition (FakeQuantActivations in w4a8/quant.h):
//   amax = max|x| over the row;  scale = amax / 127;
//   q = clamp(round_half_even(x / scale), -128, 127);  y = q * scale  (a zero row stays zero)
// FP8 E4M3 uses 448 in place of 127 and a saturating Cast to FLOAT8E4M3FN (round to nearest
// even) in place of clamp + round. The math runs in fp32; an fp16 model casts in and out.
import type { NodeProto, TensorProto } from 'onnx-buf';
import { makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import { makeTensor } from '../onnx/tensor';
import type { ActFormat } from '../quant/config';

export interface ActQuantGraph {
  nodes: NodeProto[];
  initializers: TensorProto[];
  /** The value holding the fake-quantized activation (same type as the input). */
  output: string;
}

/** Opset the subgraph needs: Cast to FLOAT8E4M3FN exists from 19; ReduceMax's axes input from 18. */
export function actQuantMinOpset(aformat: ActFormat): number {
  return aformat === 'fp8' ? 19 : 13;
}

function scalar(name: string, v: number): TensorProto {
  return makeTensor(name, DataType.FLOAT, [], Float32Array.of(v));
}

/**
 * Nodes that fake-quantize `input` (elem type `elemType`) per token along its last axis.
 * `prefix` makes names unique; `opset` picks ReduceMax's attribute or input form.
 */
export function actQuantGraph(input: string, elemType: DataType, aformat: Exclude<ActFormat, 'none'>, prefix: string, opset: number): ActQuantGraph {
  const n = (s: string) => `${prefix}/${s}`;
  const qmax = aformat === 'int8' ? 127 : 448;
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [scalar(n('qmax'), qmax), scalar(n('zero'), 0)];
  let x = input;
  if (elemType !== DataType.FLOAT) {
    nodes.push(makeNode('Cast', [input], [n('x_f32')], { to: DataType.FLOAT }, { name: n('CastIn') }));
    x = n('x_f32');
  }
  nodes.push(makeNode('Abs', [x], [n('abs')], {}, { name: n('Abs') }));
  if (opset >= 18) {
    initializers.push(makeTensor(n('axes'), DataType.INT64, [1], BigInt64Array.of(-1n)));
    nodes.push(makeNode('ReduceMax', [n('abs'), n('axes')], [n('amax')], { keepdims: 1 }, { name: n('ReduceMax') }));
  } else {
    nodes.push(makeNode('ReduceMax', [n('abs')], [n('amax')], { axes: [-1], keepdims: 1 }, { name: n('ReduceMax') }));
  }
  // scale = amax / qmax; a zero row divides by 1 instead of 0 (0 / 0 = NaN) and stays zero.
  initializers.push(scalar(n('one'), 1));
  nodes.push(makeNode('Div', [n('amax'), n('qmax')], [n('scale')], {}, { name: n('DivScale') }));
  nodes.push(makeNode('Greater', [n('amax'), n('zero')], [n('nonzero')], {}, { name: n('Greater') }));
  nodes.push(makeNode('Where', [n('nonzero'), n('scale'), n('one')], [n('divisor')], {}, { name: n('Where') }));
  nodes.push(makeNode('Div', [x, n('divisor')], [n('scaled')], {}, { name: n('DivX') }));
  if (aformat === 'int8') {
    initializers.push(scalar(n('lo'), -128), scalar(n('hi'), 127));
    nodes.push(makeNode('Round', [n('scaled')], [n('rounded')], {}, { name: n('Round') }));
    nodes.push(makeNode('Clip', [n('rounded'), n('lo'), n('hi')], [n('q')], {}, { name: n('Clip') }));
  } else {
    nodes.push(makeNode('Cast', [n('scaled')], [n('q8')], { to: DataType.FLOAT8E4M3FN, saturate: 1 }, { name: n('CastFp8') }));
    nodes.push(makeNode('Cast', [n('q8')], [n('q')], { to: DataType.FLOAT }, { name: n('CastBack') }));
  }
  const out = elemType !== DataType.FLOAT ? n('y_f32') : n('y');
  nodes.push(makeNode('Mul', [n('q'), n('scale')], [out], {}, { name: n('MulScale') }));
  if (elemType !== DataType.FLOAT) nodes.push(makeNode('Cast', [out], [n('y')], { to: elemType }, { name: n('CastOut') }));
  return { nodes, initializers, output: n('y') };
}
