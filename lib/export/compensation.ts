// The error correction C beside a quantized layer, as standard ONNX ops that stock ONNX Runtime
// runs next to MatMulNBits, QDQ or the simulated weight: y = layer(x) + x C, with x the activation
// the layer reads before any activation fake-quant (after AWQ's 1/s: C was fitted in that space).
//   low rank   C = A B:            MatMul(MatMul(x, A), B)
//   Kronecker  C = sum_i A_i (x) B_i, never materialized: with x reshaped to [M, 1, k1, k2],
//              x C reshaped to [M, n1, n2] is sum_i A_i^T X B_i, so
//              Reshape -> MatMul(., B [R, k2, n2]) -> MatMul(Transpose(A) [R, n1, k1], .) -> ReduceSum over R -> Reshape
// Factors are fp16 initializers (<weight>_lorc_a / _lorc_b, <weight>_kron_a / _kron_b), cast to the
// layer's type when that is not fp16 (a Cast of a constant, folded by ORT at load).
import type { NodeProto } from 'onnx-buf';
import { makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { CORRECTION_SUFFIXES } from '../onnx/inspect';
import { makeFloatTensorLike, makeTensor, replaceInitializer } from '../onnx/tensor';
import type { QuantizedLayer } from '../quant/types';
import { defaultOpset, mainGraph, uniqueName } from './graph_edit';


function int64s(model: OnnxModel, base: string, values: number[]): string {
  const name = uniqueName(model, base);
  replaceInitializer(model, makeTensor(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  return name;
}

/** Adds the correction of `q` (which must carry one), reading `input`; the layer's output name stays the corrected sum. */
export function addCompensationBranch(model: OnnxModel, q: QuantizedLayer, input: string): void {
  const comp = q.compensation;
  if (!comp) return;
  const l = q.layer;
  const node = l.node;
  const y = node.output[0];
  const base = l.weightName;
  const type = l.dataType === DataType.FLOAT16 || l.dataType === DataType.BFLOAT16 ? l.dataType : DataType.FLOAT;
  const nodes: NodeProto[] = [];
  const factor = (suffix: string, dims: number[], values: Float32Array): string => {
    const name = uniqueName(model, `${base}${suffix}`);
    replaceInitializer(model, makeFloatTensorLike(name, DataType.FLOAT16, dims, values));
    if (type === DataType.FLOAT16) return name;
    const cast = uniqueName(model, `${name}/cast`);
    nodes.push(makeNode('Cast', [name], [cast], { to: type }, { name: uniqueName(model, `${name}/Cast`) }));
    return cast;
  };
  const main = uniqueName(model, `${y}/quantized`);
  const corr = uniqueName(model, `${y}/correction`);
  const tag = uniqueName(model, `${base}/compensation`);
  if (!comp.shapes) {
    const a = factor(CORRECTION_SUFFIXES.lowRank[0], [l.k, comp.rank], comp.a);
    const b = factor(CORRECTION_SUFFIXES.lowRank[1], [comp.rank, l.n], comp.b);
    const t = uniqueName(model, `${tag}/xa`);
    nodes.push(makeNode('MatMul', [input, a], [t], {}, { name: `${tag}/MatMulA` }));
    nodes.push(makeNode('MatMul', [t, b], [corr], {}, { name: `${tag}/MatMulB` }));
  } else {
    const { k1, n1, k2, n2 } = comp.shapes;
    const r = comp.rank;
    const a = factor(CORRECTION_SUFFIXES.kronecker[0], [r, k1, n1], comp.a);
    const b = factor(CORRECTION_SUFFIXES.kronecker[1], [r, k2, n2], comp.b);
    const xr = uniqueName(model, `${tag}/x`);
    const xb = uniqueName(model, `${tag}/xb`);
    const at = uniqueName(model, `${tag}/a_t`);
    const axb = uniqueName(model, `${tag}/axb`);
    const summed = uniqueName(model, `${tag}/sum`);
    const shape = uniqueName(model, `${tag}/shape`);
    nodes.push(makeNode('Reshape', [input, int64s(model, `${tag}/x_shape`, [-1, 1, k1, k2])], [xr], {}, { name: `${tag}/Reshape` }));
    nodes.push(makeNode('MatMul', [xr, b], [xb], {}, { name: `${tag}/MatMulB` }));
    nodes.push(makeNode('Transpose', [a], [at], { perm: [0, 2, 1] }, { name: `${tag}/TransposeA` }));
    nodes.push(makeNode('MatMul', [at, xb], [axb], {}, { name: `${tag}/MatMulA` }));
    if (r === 1) {
      nodes.push(makeNode('Identity', [axb], [summed], {}, { name: `${tag}/Terms` }));
    } else if (defaultOpset(model) >= 13) {
      nodes.push(makeNode('ReduceSum', [axb, int64s(model, `${tag}/terms_axis`, [1])], [summed], { keepdims: 0 }, { name: `${tag}/Terms` }));
    } else {
      nodes.push(makeNode('ReduceSum', [axb], [summed], { axes: [1], keepdims: 0 }, { name: `${tag}/Terms` }));
    }
    nodes.push(makeNode('Shape', [main], [shape], {}, { name: `${tag}/Shape` }));
    nodes.push(makeNode('Reshape', [summed, shape], [corr], {}, { name: `${tag}/ReshapeOut` }));
  }
  nodes.push(makeNode('Add', [main, corr], [y], {}, { name: `${tag}/Add` }));
  node.output[0] = main;
  const g = mainGraph(model);
  const at = g.node.indexOf(node);
  if (at < 0) throw new Error(`layer "${l.name}" is not in the main graph`);
  g.node.splice(at + 1, 0, ...nodes);
}
