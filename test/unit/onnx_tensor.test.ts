// Tensor access and graph construction: raw bytes in every storage form, float conversion,
// constructors' checks, attributes, and the quantizable-layer query.
import { create, toBinary } from '@bufbuild/protobuf';
import { AttributeProto_AttributeType as AttrType, ModelProtoSchema, TensorProtoSchema } from 'onnx-buf';
import { makeAttribute, makeModel, makeNode, makeValueInfo, floatAttr } from '../../lib/onnx/build';
import { DataType, byteSizeOf } from '../../lib/onnx/dtype';
import { consumers, findQuantizableLayers, initializerMap, producers } from '../../lib/onnx/graph';
import { loadModel, modelFromBytes, type OnnxModel } from '../../lib/onnx/model';
import { native } from '../../lib/native/binding';
import { makeFloatTensorLike, makeTensor, replaceInitializer, tensorDims, tensorRawBytes, tensorToFloat32 } from '../../lib/onnx/tensor';
import { PAST_ONNX, randomFloats } from '../helpers/onnx_fixtures';

const bare: OnnxModel = { proto: create(ModelProtoSchema), dir: '.' };

describe('tensor data', () => {
  it('reads float_data and raw_data forms identically', () => {
    const values = randomFloats(12, 1);
    const typed = create(TensorProtoSchema, { name: 'a', dataType: DataType.FLOAT, dims: [3n, 4n], floatData: Array.from(values) });
    const raw = makeTensor('a', DataType.FLOAT, [3, 4], values);
    expect(Buffer.from(tensorRawBytes(bare, typed)).equals(Buffer.from(tensorRawBytes(bare, raw)))).toBe(true);
    expect(tensorToFloat32(bare, typed)).toEqual(values);
    expect(tensorDims(raw)).toEqual([3, 4]);
  });

  it('reads int32_data of 16-bit, 8-bit and 4-bit types as packed raw bytes', () => {
    const f16 = create(TensorProtoSchema, { name: 'h', dataType: DataType.FLOAT16, dims: [2n], int32Data: [0x3c00, 0xc000] });
    expect(tensorToFloat32(bare, f16)).toEqual(new Float32Array([1, -2]));
    const i8 = create(TensorProtoSchema, { name: 'i', dataType: DataType.INT8, dims: [3n], int32Data: [-1, 5, -128] });
    expect(Array.from(new Int8Array(tensorRawBytes(bare, i8).buffer.slice(0)))).toEqual([-1, 5, -128]);
    const i4 = create(TensorProtoSchema, { name: 'q', dataType: DataType.INT4, dims: [3n], int32Data: [0x21, 0x03] });
    expect(Array.from(tensorRawBytes(bare, i4))).toEqual([0x21, 0x03]);
    expect(byteSizeOf(DataType.INT4, 3)).toBe(2);
  });

  it('refuses data whose size disagrees with dims and type', () => {
    const bad = create(TensorProtoSchema, { name: 'w', dataType: DataType.FLOAT, dims: [4n], rawData: new Uint8Array(12) });
    expect(() => tensorRawBytes(bare, bad)).toThrow(/tensor "w" \(FLOAT \[4\]\) holds 12 bytes of data, expected 16/);
    expect(() => makeTensor('w', DataType.FLOAT16, [2, 3], new Uint16Array(5))).toThrow(RangeError);
    expect(() => makeTensor('w', DataType.FLOAT, [-1], new Float32Array(0))).toThrow(RangeError);
    expect(() => makeFloatTensorLike('w', DataType.INT8, [2], new Float32Array(2))).toThrow(/FLOAT, FLOAT16 or BFLOAT16/);
    expect(() => tensorToFloat32(bare, makeTensor('i', DataType.INT32, [1], new Int32Array(1)))).toThrow(/only FLOAT/);
  });

  it('narrows to fp16/bf16 exactly as the native converter does, and widens back', () => {
    const values = randomFloats(1000, 2, 100);
    for (const [type, narrow] of [
      [DataType.FLOAT16, native().float32ToFloat16],
      [DataType.BFLOAT16, native().float32ToBfloat16],
    ] as const) {
      const t = makeFloatTensorLike('w', type, [10, 100], values);
      const expected = new Uint16Array(1000);
      narrow(values, expected);
      expect(Buffer.from(t.rawData).equals(Buffer.from(expected.buffer))).toBe(true);
      const back = tensorToFloat32(bare, t);
      const again = makeFloatTensorLike('w', type, [10, 100], back);
      expect(Buffer.from(again.rawData).equals(Buffer.from(t.rawData))).toBe(true);
    }
  });

  it('converts double initializers to fp32', () => {
    const d = new Float64Array([1.5, -2.25, 1e-3]);
    expect(tensorToFloat32(bare, makeTensor('d', DataType.DOUBLE, [3], d))).toEqual(new Float32Array(d));
  });
});

describe('building graphs', () => {
  it('types attributes from their values', () => {
    expect(makeAttribute('a', 3).type).toBe(AttrType.INT);
    expect(makeAttribute('a', 0.5).type).toBe(AttrType.FLOAT);
    expect(makeAttribute('a', floatAttr(1)).type).toBe(AttrType.FLOAT);
    expect(makeAttribute('a', floatAttr([1, 2])).floats).toEqual([1, 2]);
    expect(makeAttribute('a', [1, 2]).ints).toEqual([1n, 2n]);
    expect(makeAttribute('a', [1, 2.5]).type).toBe(AttrType.FLOATS);
    expect(new TextDecoder().decode(makeAttribute('a', 'NOTSET').s)).toBe('NOTSET');
    expect(makeAttribute('a', ['x', 'y']).strings.length).toBe(2);
    expect(makeAttribute('a', makeTensor('c', DataType.FLOAT, [1], new Float32Array([2]))).type).toBe(AttrType.TENSOR);
    expect(() => makeAttribute('a', [1, 'x'] as unknown as number[])).toThrow(TypeError);
  });

  it('makes a model that serializes, reparses and answers graph queries', () => {
    const w = makeFloatTensorLike('w', DataType.FLOAT, [32, 8], randomFloats(256, 4));
    const wt = makeFloatTensorLike('wt', DataType.FLOAT16, [8, 32], randomFloats(256, 5));
    const small = makeFloatTensorLike('s', DataType.FLOAT, [8, 8], randomFloats(64, 6));
    const model = makeModel(
      {
        name: 'g',
        nodes: [
          makeNode('MatMul', ['x', 'w'], ['h'], {}, { name: 'mm' }),
          // Gemm takes one element type on both inputs, so the fp16 weight gets an fp16 activation.
          makeNode('Cast', ['h'], ['h16'], { to: DataType.FLOAT16 }, { name: 'to_half' }),
          makeNode('Gemm', ['h16', 'wt'], ['g16'], { transB: 1, alpha: floatAttr(1) }, { name: 'gemm' }),
          makeNode('Cast', ['g16'], ['g'], { to: DataType.FLOAT }, { name: 'to_float' }),
          makeNode('MatMul', ['h', 's'], ['z'], {}, { name: 'too_small' }),
          makeNode('Add', ['g', 'x'], ['y']),
        ],
        inputs: [makeValueInfo('x', DataType.FLOAT, ['batch', 32])],
        outputs: [makeValueInfo('y', DataType.FLOAT, ['batch', 32]), makeValueInfo('z', DataType.FLOAT, ['batch', 8])],
        initializers: [w, wt, small],
      },
      [{ domain: '', version: 21 }],
    );
    const reread = modelFromBytes(toBinary(ModelProtoSchema, model.proto), '.');
    expect(reread.proto).toEqual(model.proto);
    expect(reread.proto.graph!.node[5].name).toBe(''); // unset, not written as an empty string
    const layers = findQuantizableLayers(reread);
    expect(layers.map((l) => [l.node.name, l.weightName, l.k, l.n, l.dataType, l.transB])).toEqual([
      ['mm', 'w', 32, 8, DataType.FLOAT, undefined],
      ['gemm', 'wt', 32, 8, DataType.FLOAT16, true],
    ]);
    expect(consumers(reread).get('h')!.map((n) => n.name)).toEqual(['to_half', 'too_small']);
    expect(consumers(reread).get('h16')!.map((n) => n.name)).toEqual(['gemm']);
    expect(producers(reread).get('g16')!.name).toBe('gemm');
    expect([...initializerMap(reread).keys()]).toEqual(['w', 'wt', 's']);
    replaceInitializer(reread, makeFloatTensorLike('s', DataType.FLOAT, [16, 8], randomFloats(128, 7)));
    expect(findQuantizableLayers(reread).map((l) => l.weightName)).toEqual(['w', 'wt', 's']);
  });

  it('finds the 16 MatMul weights of the shared GPT-2 model', () => {
    const layers = findQuantizableLayers(loadModel(PAST_ONNX));
    expect(layers.length).toBe(16);
    expect(layers.every((l) => l.node.opType === 'MatMul' && l.k >= 16 && !l.external)).toBe(true);
    expect(layers[layers.length - 1]).toMatchObject({ k: 32, n: 1000 });
  });
});
