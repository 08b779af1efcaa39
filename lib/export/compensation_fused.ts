// The error correction of a --format w4a8 layer, fused into its com.w4a8.W4A8MatMul node
// (native/include/w4a8/ort_op.h): the factors become the node's optional inputs 5..8 instead of the
// standard-op side branch of compensation.ts (which stays for matmulnbits, qdq and sim):
//   low rank   lowrank_u [K, r] = A, lowrank_v [r, N] = B            (inputs 5, 6)
//   Kronecker  kron_a [R, k1, n1], kron_b [R, k2, n2]                 (inputs 7, 8)
// fp16 initializers with the same names as the side branch's (inspect counts them by suffix); the op
// reads them in fp16 whatever the model's float type, and adds the term on the unquantized input,
// as the side branch does. With --compensate-factors int8 the low-rank pair is int8 with row scales
// (formats.h Int8Rows): lowrank_u = U^T [r, K], lowrank_v [r, N], scales at inputs 9, 10.
import type { QuantConfig } from '../quant/config';
import { quantizeInt8Rows } from '../native/quant';
import { transposeMatrix } from '../native/tensor_layout';
import { makeTensor } from '../onnx/tensor';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { CORRECTION_SUFFIXES } from '../onnx/inspect';
import { makeFloatTensorLike, replaceInitializer } from '../onnx/tensor';
import type { QuantizedLayer } from '../quant/types';
import { uniqueName } from './graph_edit';

/** Input positions of the correction factors on W4A8MatMul. */
export const W4A8_LOWRANK_INPUTS = [5, 6] as const;
export const W4A8_KRON_INPUTS = [7, 8] as const;
/** Row scales of int8 low-rank factors. */
export const W4A8_LOWRANK_SCALE_INPUTS = [9, 10] as const;
/** Initializer suffix of an int8 factor's row scales (after the factor's own name). */
export const INT8_SCALE_SUFFIX = '_scale';

/** Adds the correction of `q` to its W4A8MatMul node (replaceWithW4A8MatMul ran first); `input` is the activation the correction must read. */
export async function addFusedCompensation(model: OnnxModel, q: QuantizedLayer, input: string, config?: QuantConfig): Promise<void> {
  const comp = q.compensation;
  if (!comp) return;
  const l = q.layer;
  const node = l.node;
  if (node.opType !== 'W4A8MatMul') throw new Error(`layer "${l.name}": the fused correction needs its W4A8MatMul node, found ${node.opType}`);
  if (node.input[0] !== input) {
    throw new Error(`layer "${l.name}": W4A8MatMul reads "${node.input[0]}" but the correction must read "${input}"; the fused form cannot express this`);
  }
  const factor = (suffix: string, dims: number[], values: Float32Array): string => {
    const name = uniqueName(model, `${l.weightName}${suffix}`);
    replaceInitializer(model, makeFloatTensorLike(name, DataType.FLOAT16, dims, values));
    return name;
  };
  const place = (at: number, name: string) => {
    while (node.input.length < at) node.input.push('');
    node.input[at] = name;
  };
  if (!comp.shapes && config?.compensateFactors === 'int8') {
    const int8 = async (suffix: string, rows: number, cols: number, values: Float32Array, at: number, scaleAt: number) => {
      const { q: codes, scales } = await quantizeInt8Rows(values, rows, cols);
      const name = uniqueName(model, `${l.weightName}${suffix}`);
      replaceInitializer(model, makeTensor(name, DataType.INT8, [rows, cols], codes));
      const scaleName = uniqueName(model, `${name}${INT8_SCALE_SUFFIX}`);
      replaceInitializer(model, makeTensor(scaleName, DataType.FLOAT, [rows], scales));
      place(at, name);
      place(scaleAt, scaleName);
    };
    await int8(CORRECTION_SUFFIXES.lowRank[0], comp.rank, l.k, await transposeMatrix(comp.a, l.k, comp.rank), W4A8_LOWRANK_INPUTS[0], W4A8_LOWRANK_SCALE_INPUTS[0]);
    await int8(CORRECTION_SUFFIXES.lowRank[1], comp.rank, l.n, comp.b, W4A8_LOWRANK_INPUTS[1], W4A8_LOWRANK_SCALE_INPUTS[1]);
  } else if (!comp.shapes) {
    place(W4A8_LOWRANK_INPUTS[0], factor(CORRECTION_SUFFIXES.lowRank[0], [l.k, comp.rank], comp.a));
    place(W4A8_LOWRANK_INPUTS[1], factor(CORRECTION_SUFFIXES.lowRank[1], [comp.rank, l.n], comp.b));
  } else {
    const { k1, n1, k2, n2 } = comp.shapes;
    place(W4A8_KRON_INPUTS[0], factor(CORRECTION_SUFFIXES.kronecker[0], [comp.rank, k1, n1], comp.a));
    place(W4A8_KRON_INPUTS[1], factor(CORRECTION_SUFFIXES.kronecker[1], [comp.rank, k2, n2], comp.b));
  }
}
