// Raising a model's default opset (QDQ int4 needs 21, the FP8 Cast 19, the sim subgraph 13)
// changes the meaning of a few existing nodes. Those whose attributes became inputs are
// rewritten (the axes of Squeeze/Unsqueeze/ReduceSum at 13, of every other Reduce* at 18, Split's
// split at 13 and its num_outputs at 18); ops whose semantics changed without a mechanical rewrite are refused by name.
import type { NodeProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { makeAttribute } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { makeTensor, replaceInitializer } from '../onnx/tensor';
import { defaultOpset, mainGraph, uniqueName } from './graph_edit';

const AXES_TO_INPUT_AT_13 = new Set(['Squeeze', 'Unsqueeze', 'ReduceSum']);
const AXES_TO_INPUT_AT_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);
// Coerced-to-2-D semantics before 13; the same only when axis is the last one, which a graph
// does not say without shapes, so these are refused.
const SEMANTICS_CHANGED_AT_13 = new Set(['Softmax', 'LogSoftmax', 'Hardmax']);

function isDefaultDomain(n: NodeProto): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

function moveIntsToInput(model: OnnxModel, node: NodeProto, attr: string, inputIndex: number): void {
  const a = node.attribute.find((x) => x.name === attr);
  if (!a) return;
  const values = a.ints.map((v) => BigInt(v));
  const name = uniqueName(model, `${node.name || node.output[0]}/${attr}`);
  replaceInitializer(model, makeTensor(name, DataType.INT64, [values.length], BigInt64Array.from(values)));
  node.attribute = node.attribute.filter((x) => x !== a);
  while (node.input.length < inputIndex) node.input.push('');
  node.input[inputIndex] = name;
}

/** Rewrites the main graph's default-domain nodes for `to` and sets the default opset to it. */
export function upgradeDefaultOpset(model: OnnxModel, to: number): { from: number } | undefined {
  const from = defaultOpset(model);
  if (from >= to) return undefined;
  const nodes = mainGraph(model).node.filter(isDefaultDomain);
  if (from < 13 && to >= 13) {
    const bad = nodes.find((n) => SEMANTICS_CHANGED_AT_13.has(n.opType));
    if (bad) {
      throw new W4A8Error(`raising the model's opset from ${from} to ${to} would change what ${bad.opType} node "${bad.name}" computes; use --format matmulnbits, or export the model at opset 13 or later`);
    }
  }
  for (const n of nodes) {
    if (from < 13 && to >= 13 && AXES_TO_INPUT_AT_13.has(n.opType)) moveIntsToInput(model, n, 'axes', 1);
    if (from < 13 && to >= 13 && n.opType === 'Split') moveIntsToInput(model, n, 'split', 1);
    if (from < 18 && to >= 18 && AXES_TO_INPUT_AT_18.has(n.opType)) moveIntsToInput(model, n, 'axes', 1);
    // From 18 an equal Split must say how many parts it makes.
    if (from < 18 && to >= 18 && n.opType === 'Split' && (n.input[1] ?? '') === '' && !n.attribute.some((a) => a.name === 'num_outputs')) {
      n.attribute.push(makeAttribute('num_outputs', n.output.length));
    }
  }
  for (const o of model.proto.opsetImport) if (o.domain === '' || o.domain === 'ai.onnx') o.version = BigInt(to);
  return { from };
}
