// Replacing one layer's float weight by its quantized form, per export format:
//   sim          the dequantized weight as a float initializer of the original type (standard ops only)
//   matmulnbits  com.microsoft.MatMulNBits: B uint8 [N, blocks, group/2], scales, packed zero points
//   qdq          opset-21 blocked DequantizeLinear of an INT4/UINT4 [K, N] initializer -> MatMul
//   w4a8         com.w4a8 W4A8MatMul: the MatMulNBits arrays, run by the w4a8 CPU kernels inside ORT
import type { NodeProto } from 'onnx-buf';
import { makeNode } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { makeFloatTensorLike, makeTensor, replaceInitializer } from '../onnx/tensor';
import { blocksPerRow, scaleCount, zeroPointBytes } from '../native/formats';
import { transposeMatrix, transposeNibbles } from '../native/tensor_layout';
import type { ActFormat, QuantConfig } from '../quant/config';
import type { QuantizedLayer } from '../quant/types';
import { dropIfUnused, mainGraph, readerCount, uniqueName } from './graph_edit';

function attr(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  if (!a) return undefined;
  return a.type === 2 ? Number(a.i) : a.f;
}

/** Gemm with alpha/beta other than 1 cannot become MatMulNBits or DQ+Gemm without extra ops. */
function checkPlainGemm(node: NodeProto, name: string): void {
  if (node.opType !== 'Gemm') return;
  const alpha = attr(node, 'alpha') ?? 1;
  const beta = attr(node, 'beta') ?? 1;
  if (alpha !== 1 || beta !== 1 || (attr(node, 'transA') ?? 0) !== 0) {
    throw new Error(`layer "${name}" is a Gemm with alpha=${alpha}, beta=${beta}; only plain Gemm layers can be exported (use --exclude "${name}" or --format sim)`);
  }
}

/** sim: the dequantized weight, same type and layout as before. A weight shared with other nodes (tied embeddings) gets a new name. */
export async function replaceWithDequantized(model: OnnxModel, q: QuantizedLayer): Promise<void> {
  const l = q.layer;
  const shared = readerCount(model, l.weightName) > 1;
  const name = shared ? uniqueName(model, `${l.weightName}_dequantized`) : l.weightName;
  if (q.dequantizedTensor) {
    // Quantized in slices: the tensor already points into the output's side file.
    q.dequantizedTensor.name = name;
    replaceInitializer(model, q.dequantizedTensor);
  } else {
    const values = l.transB ? await transposeMatrix(q.dequantized, l.k, l.n) : q.dequantized;
    const dims = l.transB ? [l.n, l.k] : [l.k, l.n];
    replaceInitializer(model, makeFloatTensorLike(name, l.dataType, dims, values));
  }
  if (shared) l.node.input[1] = name;
}

/** matmulnbits: the node becomes com.microsoft.MatMulNBits reading the canonical codes as they are. */
export function replaceWithMatMulNBits(model: OnnxModel, q: QuantizedLayer, aformat: ActFormat): void {
  const l = q.layer;
  checkPlainGemm(l.node, l.name);
  const blocks = blocksPerRow(l.k, q.groupSize);
  const scaleType = l.dataType === DataType.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT;
  const bName = uniqueName(model, `${l.weightName}_Q4`);
  const sName = uniqueName(model, `${l.weightName}_scales`);
  replaceInitializer(model, makeTensor(bName, DataType.UINT8, [l.n, blocks, q.groupSize / 2], q.codes));
  replaceInitializer(model, makeFloatTensorLike(sName, scaleType, [scaleCount(l.n, l.k, q.groupSize)], q.scales));
  const inputs = [l.node.input[0], bName, sName];
  if (q.zeroPoints) {
    const zName = uniqueName(model, `${l.weightName}_zero_points`);
    replaceInitializer(model, makeTensor(zName, DataType.UINT8, [zeroPointBytes(l.n, l.k, q.groupSize)], q.zeroPoints));
    inputs.push(zName);
  } else inputs.push('');
  const bias = l.node.opType === 'Gemm' ? l.node.input[2] : undefined;
  if (bias) inputs.push('', bias);
  while (inputs[inputs.length - 1] === '') inputs.pop();
  const replacement = makeNode(
    'MatMulNBits',
    inputs,
    [...l.node.output],
    { K: l.k, N: l.n, bits: 4, block_size: q.groupSize, accuracy_level: aformat === 'int8' ? 4 : 0 },
    { name: l.node.name || uniqueName(model, `${l.weightName}/MatMulNBits`), domain: 'com.microsoft' },
  );
  swapNode(model, l.node, replacement);
  l.node = replacement;
  dropIfUnused(model, l.weightName);
}

/** The custom-op domain of W4A8MatMul (native/include/w4a8/ort_op.h). */
export const W4A8_DOMAIN = 'com.w4a8';

/**
 * w4a8: the node becomes com.w4a8.W4A8MatMul(A, codes, scales[, zero_points[, bias]]) with the
 * canonical arrays as initializers (scales always fp32); A, bias and Y keep the model's float type.
 */
export function replaceWithW4A8MatMul(model: OnnxModel, q: QuantizedLayer, config: QuantConfig): void {
  const l = q.layer;
  checkPlainGemm(l.node, l.name);
  if (q.grouping !== 'oc') {
    throw new Error(`--format w4a8: layer "${l.name}" is grouped along N (ic); the CPU kernels take groups along K only: use --grouping oc or --format sim`);
  }
  const blocks = blocksPerRow(l.k, q.groupSize);
  const bName = uniqueName(model, `${l.weightName}_Q4`);
  const sName = uniqueName(model, `${l.weightName}_scales`);
  replaceInitializer(model, makeTensor(bName, DataType.UINT8, [l.n, blocks, q.groupSize / 2], q.codes));
  replaceInitializer(model, makeTensor(sName, DataType.FLOAT, [scaleCount(l.n, l.k, q.groupSize)], q.scales));
  const inputs = [l.node.input[0], bName, sName];
  if (q.zeroPoints) {
    const zName = uniqueName(model, `${l.weightName}_zero_points`);
    replaceInitializer(model, makeTensor(zName, DataType.UINT8, [zeroPointBytes(l.n, l.k, q.groupSize)], q.zeroPoints));
    inputs.push(zName);
  } else inputs.push('');
  const bias = l.node.opType === 'Gemm' ? l.node.input[2] : undefined;
  if (bias) inputs.push(bias);
  while (inputs[inputs.length - 1] === '') inputs.pop();
  const replacement = makeNode(
    'W4A8MatMul',
    inputs,
    [...l.node.output],
    {
      K: l.k, N: l.n, bits: 4, block_size: q.groupSize,
      weight_format: config.wformat, activation_format: config.aformat,
    },
    { name: l.node.name || uniqueName(model, `${l.weightName}/W4A8MatMul`), domain: W4A8_DOMAIN },
  );
  swapNode(model, l.node, replacement);
  l.node = replacement;
  dropIfUnused(model, l.weightName);
}

/** qdq: an INT4 (symmetric) or UINT4 (asymmetric) [K, N] initializer, blocked along K, dequantized right before the MatMul. */
export async function replaceWithDequantizeLinear(model: OnnxModel, q: QuantizedLayer): Promise<void> {
  const l = q.layer;
  checkPlainGemm(l.node, l.name);
  const blocks = blocksPerRow(l.k, q.groupSize);
  const symmetric = q.zeroPoints === undefined;
  const codes = await transposeNibbles(q.codes, l.n, (blocks * q.groupSize) / 2, l.k, symmetric);
  const scales = await transposeMatrix(q.scales, l.n, blocks);
  const wName = uniqueName(model, `${l.weightName}_int4`);
  const sName = uniqueName(model, `${l.weightName}_scale`);
  const dqOut = uniqueName(model, `${l.weightName}_dequantized`);
  replaceInitializer(model, makeTensor(wName, symmetric ? DataType.INT4 : DataType.UINT4, [l.k, l.n], codes));
  replaceInitializer(model, makeFloatTensorLike(sName, l.dataType === DataType.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT, [blocks, l.n], scales));
  const dqInputs = [wName, sName];
  if (!symmetric) {
    const zName = uniqueName(model, `${l.weightName}_zero_point`);
    const zp = await transposeNibbles(q.zeroPoints!, l.n, Math.ceil(blocks / 2), blocks, false);
    replaceInitializer(model, makeTensor(zName, DataType.UINT4, [blocks, l.n], zp));
    dqInputs.push(zName);
  }
  const dq = makeNode('DequantizeLinear', dqInputs, [dqOut], { axis: 0, block_size: q.groupSize }, { name: uniqueName(model, `${l.weightName}/DequantizeLinear`) });
  const g = mainGraph(model);
  g.node.splice(g.node.indexOf(l.node), 0, dq);
  const old = l.weightName;
  l.node.input[1] = dqOut;
  if (l.node.opType === 'Gemm') {
    l.node.attribute = l.node.attribute.filter((a) => a.name !== 'transB');
  }
  dropIfUnused(model, old);
}

function swapNode(model: OnnxModel, oldNode: NodeProto, newNode: NodeProto): void {
  const g = mainGraph(model);
  const i = g.node.indexOf(oldNode);
  if (i < 0) throw new Error(`node "${oldNode.name}" is not in the main graph`);
  g.node[i] = newNode;
}
