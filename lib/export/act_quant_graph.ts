// Per-token dynamic activation quantization written with standard ONNX ops, for the `sim`
// export. The numerics are the kernels' (native/include/w4a8/act_quant_def.h), step for step, so
// that the simulation agrees with the native quantizer and the CPU/CUDA kernels bit for bit:
//   amax = max|x| over the row;  inv = Where(amax > 0, Min(qmax / amax, FLT_MAX), 0);  scale = amax / qmax
//   int8: q = Clip(Round(x * inv), -127, 127)   (Round is half to even)
//   fp8:  q = Cast(Cast(x * inv -> FLOAT8E4M3FN, saturate=1) -> FLOAT)   (nearest even, +-448)
//   y = q * scale   (a zero row stays zero: inv is 0)
// qmax is 127 for int8 and 448 for FP8. The FLT_MAX cap only acts when amax is so small (below about
// 2^-121) that qmax / amax overflows: it keeps the row's zeros from becoming 0 * inf = NaN. Multiplying by inv, not dividing by scale, matters: the two
// round differently on about 1 value in 10^6. The math runs in fp32; an fp16 model casts in and out.
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

/** The largest finite float32 (3.4028234663852886e38), the cap of inv. */
const FLT_MAX = 3.4028234663852886e38;

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
  // inv = min(qmax / amax, FLT_MAX), or 0 for a zero row (qmax / 0 is +inf, which Where discards).
  initializers.push(scalar(n('inv_max'), FLT_MAX));
  nodes.push(makeNode('Div', [n('amax'), n('qmax')], [n('scale')], {}, { name: n('DivScale') }));
  nodes.push(makeNode('Div', [n('qmax'), n('amax')], [n('inv_raw')], {}, { name: n('DivInv') }));
  nodes.push(makeNode('Min', [n('inv_raw'), n('inv_max')], [n('inv_capped')], {}, { name: n('MinInv') }));
  nodes.push(makeNode('Greater', [n('amax'), n('zero')], [n('nonzero')], {}, { name: n('Greater') }));
  nodes.push(makeNode('Where', [n('nonzero'), n('inv_capped'), n('zero')], [n('inv')], {}, { name: n('Where') }));
  nodes.push(makeNode('Mul', [x, n('inv')], [n('scaled')], {}, { name: n('MulInv') }));
  if (aformat === 'int8') {
    initializers.push(scalar(n('lo'), -127), scalar(n('hi'), 127));
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
