// Graph validation before any work (lib/onnx/graph_check.ts): each structural fault ONNX Runtime
// refuses at load is refused by our parser too, with one message naming the first fault.
import { toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { modelFromBytes, type OnnxModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { checkModelGraph } from '../../lib/onnx/graph_check';

function valid(): OnnxModel {
  const w = makeFloatTensorLike('w', DataType.FLOAT, [4, 3], new Float32Array(12).fill(0.5));
  return makeModel(
    {
      name: 'g',
      inputs: [makeValueInfo('x', DataType.FLOAT, [2, 4])],
      outputs: [makeValueInfo('z', DataType.FLOAT, [2, 3])],
      initializers: [w],
      nodes: [makeNode('MatMul', ['x', 'w'], ['y'], {}, { name: 'mm' }), makeNode('Relu', ['y'], ['z'], {}, { name: 'relu' })],
    },
    [{ domain: '', version: 17 }],
  );
}

async function ortLoads(m: OnnxModel): Promise<boolean> {
  try {
    const s = await ort.InferenceSession.create(toBinary(ModelProtoSchema, m.proto), { logSeverityLevel: 4 });
    await s.release();
    return true;
  } catch {
    return false;
  }
}

const faults: [string, (m: OnnxModel) => void, RegExp][] = [
  ['a node input nothing defines', (m) => (m.proto.graph!.node[1].input[0] = 'nowhere'), /node 1 \(Relu "relu"\) reads "nowhere", which no graph input, initializer or earlier node defines/],
  ['a value defined twice', (m) => (m.proto.graph!.node[1].output[0] = 'y'), /"y" is defined twice/],
  ['a graph output nothing defines', (m) => (m.proto.graph!.output[0].name = 'q'), /graph output "q" is defined by nothing/],
  ['a node in a domain opset_import lacks', (m) => (m.proto.graph!.node[1].domain = 'com.example'), /uses domain "com.example", which opset_import does not list/],
  ['an opset beyond ORT', (m) => (m.proto.opsetImport[0].version = 999n), /ai.onnx opset 999; ONNX Runtime supports 7 to 24/],
  ['initializer dims larger than its data', (m) => (m.proto.graph!.initializer[0].dims = [4n, 4n]), /initializer "w" \(FLOAT \[4, 4\]\) needs 64 bytes of raw_data; it holds 48/],
  ['a negative dim', (m) => (m.proto.graph!.initializer[0].dims = [-4n, -3n]), /initializer "w" has a negative dimension -4/],
  ['a huge dim', (m) => (m.proto.graph!.initializer[0].dims = [1n << 40n, 1n << 40n]), /more elements than any file can hold/],
];

describe('checkModelGraph', () => {
  it('accepts a valid model (ORT loads it too)', async () => {
    const m = valid();
    expect(() => checkModelGraph(m.proto, 'm.onnx')).not.toThrow();
    expect(await ortLoads(m)).toBe(true);
  });

  it.each(faults)('refuses %s, as ORT does, naming the first fault', async (_name, mutate, message) => {
    const m = valid();
    mutate(m);
    expect(await ortLoads(m)).toBe(false);
    expect(() => checkModelGraph(m.proto, 'm.onnx')).toThrow(message);
    // The parser every command goes through applies the same check.
    expect(() => modelFromBytes(toBinary(ModelProtoSchema, m.proto), '.')).toThrow(/is not a loadable ONNX model/);
  });

  it('refuses a STRING initializer that carries raw data (a float weight with its type flipped)', () => {
    const m = valid();
    const init = m.proto.graph!.initializer.find((t) => t.rawData.length > 0);
    expect(init).toBeDefined();
    init!.dataType = DataType.STRING;
    expect(() => checkModelGraph(m.proto, 'm.onnx')).toThrow(new RegExp(`"${init!.name}" is a STRING tensor with raw data`));
  });

  it('refuses an empty name for a required input (MatMul B), which ORT rejects at load', () => {
    const m = valid();
    const node = m.proto.graph!.node.find((n) => n.opType === 'MatMul');
    expect(node).toBeDefined();
    node!.input[1] = '';
    expect(() => checkModelGraph(m.proto, 'm.onnx')).toThrow(/MatMul.* lacks its required input 1/);
  });

  it('refuses ai.onnx opsets below 7: ORT has no CPU kernel for Mul, Add and most element-wise ops there, so an export would not load', () => {
    const m = valid();
    m.proto.opsetImport[0].version = 6n;
    expect(() => checkModelGraph(m.proto, 'm.onnx')).toThrow(/ai.onnx opset 6; ONNX Runtime supports 7 to 24/);
  });

  it('refuses nodes out of topological order (the ONNX spec requires it; ORT sorts silently, our graph edits would not)', () => {
    const m = valid();
    m.proto.graph!.node.reverse();
    expect(() => checkModelGraph(m.proto, 'm.onnx')).toThrow(/node 0 \(Relu "relu"\) reads "y", which no graph input, initializer or earlier node defines/);
  });
});
