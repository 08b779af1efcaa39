// Model I/O: lossless round trips, unknown fields, bad input, escaping external-data locations.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from 'onnx-buf';
import { W4A8Error } from '../../lib/util/errors';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, modelBytes, modelFromBytes, saveModel } from '../../lib/onnx/model';
import { makeTensor, replaceInitializer, tensorToFloat32 } from '../../lib/onnx/tensor';
import { PAST_ONNX, randomFloats, sharedOnnxModels, tempDir, tinyMlp } from '../helpers/onnx_fixtures';

const models = sharedOnnxModels();

describe('round trip of the shared models', () => {
  it('finds at least one shared ONNX model', () => {
    expect(models).toContain(PAST_ONNX);
  });

  it.each(models)('%s: read -> write -> read keeps every byte', (file) => {
    const original = fs.readFileSync(file);
    const first = loadModel(file);
    const dir = tempDir('rt');
    const out = path.join(dir, 'copy.onnx');
    saveModel(first, out, { externalData: 'never' });
    const second = loadModel(out);
    expect(Buffer.from(modelBytes(second)).equals(Buffer.from(modelBytes(first)))).toBe(true);
    expect(second.proto).toEqual(first.proto);
    // For the GPT-2 export our serializer even matches the original writer byte for byte (other
    // writers may encode repeated fields differently without any loss, so only checked here).
    if (file === PAST_ONNX) expect(Buffer.from(fs.readFileSync(out)).equals(original)).toBe(true);
    else expect(loadModel(out).proto).toEqual(loadModel(file).proto);
    fs.rmSync(dir, { recursive: true });
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

describe('unknown fields', () => {
  it('survive a round trip at model level and inside the graph', () => {
    const { model } = tinyMlp(DataType.FLOAT, 16, 8, 4, 11);
    // Field 977 (varint 123456) is in no ONNX schema: put it in the graph and after the model.
    const unknown = [0x88, 0x3d, 0xc0, 0xc4, 0x07];
    const graph = [...toBinary(GraphProtoSchema, model.proto.graph!), ...unknown];
    const head = toBinary(ModelProtoSchema, create(ModelProtoSchema, { ...model.proto, graph: undefined }));
    const bytes = new Uint8Array([...head, 0x3a, ...varint(graph.length), ...graph, ...unknown]);
    const reread = modelFromBytes(bytes, '.');
    expect(reread.proto.$unknown?.length).toBe(1);
    expect(reread.proto.graph!.$unknown?.length).toBe(1);
    const dir = tempDir('unknown');
    saveModel(reread, path.join(dir, 'm.onnx'));
    const again = loadModel(path.join(dir, 'm.onnx'));
    expect(again.proto.$unknown).toEqual(reread.proto.$unknown);
    expect(again.proto.graph!.$unknown).toEqual(reread.proto.graph!.$unknown);
    expect(Buffer.from(modelBytes(again)).equals(Buffer.from(modelBytes(reread)))).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('bad input', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('bad');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true }));

  it('a missing file', () => {
    expect(() => loadModel(path.join(dir, 'x.onnx'))).toThrow(new W4A8Error(`${path.join(dir, 'x.onnx')} does not exist`));
  });

  it('an empty file', () => {
    const f = path.join(dir, 'empty.onnx');
    fs.writeFileSync(f, '');
    expect(() => loadModel(f)).toThrow(/empty\.onnx is not an ONNX model \(the file is empty\)/);
  });

  it('a truncated file', () => {
    const f = path.join(dir, 'half.onnx');
    const bytes = fs.readFileSync(PAST_ONNX);
    fs.writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expect(() => loadModel(f)).toThrow(/half\.onnx is not an ONNX model \(protobuf parse failed: .+\)/);
  });

  it.each([
    ['text', Buffer.from('{"this": "is json, not a model"}\n'.repeat(20))],
    ['random bytes', Buffer.from(randomFloats(1000, 5).buffer)],
    ['a protobuf without a graph', Buffer.from(toBinary(ModelProtoSchema, create(ModelProtoSchema, { irVersion: 9n, producerName: 'x' })))],
  ])('%s', (_label, bytes) => {
    const f = path.join(dir, 'notonnx.onnx');
    fs.writeFileSync(f, bytes);
    let err: unknown;
    try {
      loadModel(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(W4A8Error);
    expect((err as Error).message).toMatch(/notonnx\.onnx is not an ONNX model \(.+\)$/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('a folder', () => {
    expect(() => loadModel(dir)).toThrow(/is a folder/);
  });
});

describe('external-data locations that escape the model folder', () => {
  function modelWithLocation(location: string): Uint8Array {
    const { model } = tinyMlp(DataType.FLOAT, 16, 8, 4, 3);
    const w = model.proto.graph!.initializer[0];
    w.rawData = new Uint8Array(0);
    w.dataLocation = TensorProto_DataLocation.EXTERNAL;
    w.externalData = [
      { $typeName: 'onnx.StringStringEntryProto', key: 'location', value: location },
      { $typeName: 'onnx.StringStringEntryProto', key: 'offset', value: '0' },
      { $typeName: 'onnx.StringStringEntryProto', key: 'length', value: String(16 * 8 * 4) },
    ];
    return modelBytes(model);
  }

  it.each([
    ['/etc/passwd', /absolute path/],
    ['C:\\weights.bin', /absolute path/],
    ['../weights.bin', /escapes the model's folder/],
    ['sub/../../weights.bin', /escapes the model's folder/],
    ['..\\weights.bin', /escapes the model's folder/],
    ['', /names no location/],
  ])('refuses %j before opening any file', (location, why) => {
    const dir = tempDir('escape');
    const f = path.join(dir, 'm.onnx');
    fs.writeFileSync(f, modelWithLocation(location));
    // Spy on the real module object: lib code reads fs.openSync through it at call time.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const open = jest.spyOn(require('node:fs') as typeof fs, 'openSync');
    try {
      expect(() => loadModel(f)).toThrow(W4A8Error);
      expect(() => loadModel(f)).toThrow(why);
      // Only the model file itself was opened (by readFileSync), never the named location.
      expect(open.mock.calls.map((c) => c[0])).toEqual([f, f]);
      expect(() => modelFromBytes(modelWithLocation(location), dir)).toThrow(why);
    } finally {
      open.mockRestore();
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('accepts a location in a subfolder', () => {
    expect(() => modelFromBytes(modelWithLocation('weights/w1.bin'), '.')).not.toThrow();
  });
});

describe('saving', () => {
  it('does not modify the in-memory model and writes atomically (no temp files left)', () => {
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 21);
    const before = modelBytes(model);
    const dir = tempDir('save');
    saveModel(model, path.join(dir, 'm.onnx'), { externalData: 'always' });
    expect(Buffer.from(modelBytes(model)).equals(Buffer.from(before))).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['m.onnx', 'm.onnx_data']);
    fs.rmSync(dir, { recursive: true });
  });

  it('overwrites the input path of an inline model safely', () => {
    const { model } = tinyMlp(DataType.FLOAT, 16, 8, 4, 9);
    const dir = tempDir('same');
    const f = path.join(dir, 'm.onnx');
    saveModel(model, f);
    const loaded = loadModel(f);
    replaceInitializer(loaded, makeTensor('b', DataType.FLOAT, [8], randomFloats(8, 99)));
    saveModel(loaded, f);
    expect(loadModel(f).proto).toEqual(loaded.proto);
    fs.rmSync(dir, { recursive: true });
  });

  it('moves typed-field (float_data) initializers to external data and back', () => {
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 23);
    const w1 = model.proto.graph!.initializer[0];
    const values = tensorToFloat32(model, w1);
    const typed = create(TensorProtoSchema, { name: 'w1', dataType: DataType.FLOAT, dims: w1.dims, floatData: Array.from(values) });
    replaceInitializer(model, typed);
    const before = modelBytes(model);
    const dir = tempDir('typed');
    saveModel(model, path.join(dir, 'm.onnx'), { externalData: 'always' });
    expect(Buffer.from(modelBytes(model)).equals(Buffer.from(before))).toBe(true);
    const back = loadModel(path.join(dir, 'm.onnx'));
    const t = back.proto.graph!.initializer[0];
    expect(t.floatData).toEqual([]);
    expect(tensorToFloat32(back, t)).toEqual(values);
    fs.rmSync(dir, { recursive: true });
  });

  it('validates its options', () => {
    const { model } = tinyMlp(DataType.FLOAT, 16, 8, 4, 9);
    expect(() => saveModel(model, '/tmp/x.onnx', { externalDataName: '../x' })).toThrow(RangeError);
    expect(() => saveModel(model, '/tmp/x.onnx', { inlineThresholdBytes: -1 })).toThrow(RangeError);
    expect(() => saveModel(model, '/tmp/x.onnx', { externalData: 'sometimes' as 'auto' })).toThrow(RangeError);
  });
});
