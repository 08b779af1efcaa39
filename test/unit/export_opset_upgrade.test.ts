// Raising the default opset rewrites attributes that became inputs, so the model computes the
// same thing; ops whose meaning changed are refused.
import * as ort from 'onnxruntime-node';
import { upgradeDefaultOpset } from '../../lib/export/opset_upgrade';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { modelBytes, type OnnxModel } from '../../lib/onnx/model';

function build(opset: number, nodes: ReturnType<typeof makeNode>[]): OnnxModel {
  return makeModel(
    { name: 't', nodes, inputs: [makeValueInfo('x', DataType.FLOAT, [2, 3, 4])], outputs: [makeValueInfo('y', DataType.FLOAT, [1, 1, 1])], initializers: [] },
    [{ domain: '', version: opset }],
  );
}

async function run(m: OnnxModel, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(modelBytes(m));
  const y = (await s.run({ x: new ort.Tensor('float32', x, [2, 3, 4]) })).y.data as Float32Array;
  await s.release();
  return y;
}

describe('upgradeDefaultOpset', () => {
  const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i + 1) * 3);
  it('moves Reduce* and Unsqueeze axes into inputs and counts Split outputs (11 -> 21) and keeps the result', async () => {
    const nodes = () => [
      makeNode('ReduceMean', ['x'], ['m'], { axes: [-1], keepdims: 0 }, { name: 'mean' }),
      makeNode('ReduceMax', ['m'], ['mx'], { axes: [1], keepdims: 1 }, { name: 'max' }),
      makeNode('Unsqueeze', ['mx'], ['u'], { axes: [0] }, { name: 'unsq' }),
      makeNode('Split', ['u'], ['s0', 's1'], { axis: 1 }, { name: 'split' }),
      makeNode('Add', ['s0', 's1'], ['y'], {}, { name: 'add' }),
    ];
    const before = await run(build(11, nodes()), x);
    const m = build(11, nodes());
    expect(upgradeDefaultOpset(m, 21)).toEqual({ from: 11 });
    expect(Number(m.proto.opsetImport[0].version)).toBe(21);
    expect(m.proto.graph!.node.every((n) => n.attribute.every((a) => a.name !== 'axes'))).toBe(true);
    expect(Array.from(await run(m, x))).toEqual(Array.from(before));
  });
  it('refuses to raise a pre-13 Softmax, whose meaning changed', () => {
    const m = build(11, [makeNode('Softmax', ['x'], ['y'], {}, { name: 'sm' })]);
    expect(() => upgradeDefaultOpset(m, 21)).toThrow(/would change what Softmax node "sm" computes/);
  });
  it('leaves a model at or above the target alone', () => {
    const m = build(21, [makeNode('Identity', ['x'], ['y'])]);
    expect(upgradeDefaultOpset(m, 19)).toBeUndefined();
  });
});
