// Rewritten models run in onnxruntime-node exactly like the originals: the shared models after a
// round trip, fp16/bf16 weights, and external data opened by path and from bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { W4A8Error } from '../../lib/util/errors';
import { DataType } from '../../lib/onnx/dtype';
import { EXTERNAL_ALIGNMENT, externalRef, isExternal } from '../../lib/onnx/external_data';
import { loadModel, saveModel, serializeForOrt, type OnnxModel } from '../../lib/onnx/model';
import { tensorRawBytes, tensorToFloat32 } from '../../lib/onnx/tensor';
import { feedsFor, randomFloats, runOutputs, sharedOnnxModels, tempDir, tinyMlp } from '../helpers/onnx_fixtures';

async function outputsByPath(file: string, seed: number): Promise<Record<string, { dims: readonly number[]; data: number[] }>> {
  const session = await ort.InferenceSession.create(file);
  try {
    return await runOutputs(session, feedsFor(session, seed));
  } finally {
    await session.release();
  }
}

async function outputsFromModel(model: OnnxModel, seed: number): Promise<Record<string, { dims: readonly number[]; data: number[] }>> {
  const { bytes, externalData } = serializeForOrt(model);
  const session = await ort.InferenceSession.create(bytes, externalData ? { externalData } : {});
  try {
    return await runOutputs(session, feedsFor(session, seed));
  } finally {
    await session.release();
  }
}

/** y = ((x @ W1) + b) @ W2 in float64 from the stored (already rounded) weights. */
function referenceMlp(x: Float32Array, rows: number, w1: Float32Array, b: Float32Array, w2: Float32Array, k: number, h: number, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const hid = new Float64Array(h);
    for (let j = 0; j < h; j++) {
      let s = b[j];
      for (let i = 0; i < k; i++) s += x[r * k + i] * w1[i * h + j];
      hid[j] = s;
    }
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < h; i++) s += hid[i] * w2[i * n + j];
      y[r * n + j] = s;
    }
  }
  return y;
}

const models = sharedOnnxModels();

describe('shared models after a round trip', () => {
  it.each(models)('%s gives identical ORT outputs (inline and with external data)', async (file) => {
    const dir = tempDir('ort-rt');
    const model = loadModel(file);
    const inline = path.join(dir, 'inline.onnx');
    const ext = path.join(dir, 'ext.onnx');
    saveModel(model, inline, { externalData: 'never' });
    saveModel(model, ext, { externalData: 'always' });
    const expected = await outputsByPath(file, 7);
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(await outputsByPath(inline, 7)).toEqual(expected);
    expect(await outputsByPath(ext, 7)).toEqual(expected);
    expect(await outputsFromModel(loadModel(ext), 7)).toEqual(expected);
    // A different seed changes the outputs, so the comparison above is not vacuous.
    expect(await outputsByPath(ext, 8)).not.toEqual(expected);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('fp16 and bf16 weights', () => {
  it.each([
    ['FLOAT16', DataType.FLOAT16, 2 ** -10],
    ['BFLOAT16', DataType.BFLOAT16, 2 ** -7],
  ])('%s initializers round to the nearest value and run in ORT', async (_name, dataType, eps) => {
    const [k, h, n] = [48, 40, 24];
    const { model, w1, w2, bias } = tinyMlp(dataType, k, h, n, 31);
    const init = new Map(model.proto.graph!.initializer.map((t) => [t.name, t]));
    const w1q = tensorToFloat32(model, init.get('w1')!);
    const w2q = tensorToFloat32(model, init.get('w2')!);
    expect(init.get('w1')!.dataType).toBe(dataType);
    expect(tensorRawBytes(model, init.get('w1')!).length).toBe(k * h * 2);
    for (const [orig, q] of [
      [w1, w1q],
      [w2, w2q],
    ]) {
      let maxRel = 0;
      let changed = 0;
      for (let i = 0; i < orig.length; i++) {
        maxRel = Math.max(maxRel, Math.abs(q[i] - orig[i]) / Math.abs(orig[i]));
        if (q[i] !== orig[i]) changed++;
      }
      expect(maxRel).toBeLessThanOrEqual(eps / 2 + 1e-12);
      expect(changed).toBeGreaterThan(orig.length / 2);
    }

    const dir = tempDir('half');
    const file = path.join(dir, 'mlp.onnx');
    saveModel(model, file);
    const rows = 3;
    const x = randomFloats(rows * k, 77);
    const session = await ort.InferenceSession.create(file);
    const y = (await session.run({ x: new ort.Tensor('float32', x, [rows, k]) })).y.data as Float32Array;
    await session.release();
    const ref = referenceMlp(x, rows, w1q, tensorToFloat32(model, init.get('b')!), w2q, k, h, n);
    expect(bias.length).toBe(h);
    for (let i = 0; i < ref.length; i++) expect(Math.abs(y[i] - ref[i])).toBeLessThan(1e-4 * (1 + Math.abs(ref[i])));
    // Reading the saved file back gives the same fp32 values.
    const back = loadModel(file);
    expect(tensorToFloat32(back, back.proto.graph!.initializer[0])).toEqual(w1q);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('external data', () => {
  const [k, h, n] = [256, 96, 64];
  let dir: string;
  let model: OnnxModel;
  let inlineFile: string;
  let extFile: string;

  beforeAll(() => {
    dir = tempDir('ext');
    model = tinyMlp(DataType.FLOAT, k, h, n, 41).model;
    inlineFile = path.join(dir, 'inline.onnx');
    extFile = path.join(dir, 'ext.onnx');
    saveModel(model, inlineFile, { externalData: 'never' });
    saveModel(model, extFile, { externalData: 'always' });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true }));

  it('writes one side file with each large tensor 4096-aligned; small ones stay inline', () => {
    expect(fs.existsSync(path.join(dir, 'ext.onnx_data'))).toBe(true);
    const loaded = loadModel(extFile);
    const byName = new Map(loaded.proto.graph!.initializer.map((t) => [t.name, t]));
    for (const name of ['w1', 'w2']) {
      const t = byName.get(name)!;
      expect(isExternal(t)).toBe(true);
      const ref = externalRef(t);
      expect(ref.location).toBe('ext.onnx_data');
      expect(ref.offset % EXTERNAL_ALIGNMENT).toBe(0);
      expect(t.rawData.length).toBe(0);
      // Lazily read bytes equal the original tensor's.
      const original = model.proto.graph!.initializer.find((x) => x.name === name)!;
      expect(Buffer.from(tensorRawBytes(loaded, t)).equals(Buffer.from(original.rawData))).toBe(true);
    }
    expect(isExternal(byName.get('b')!)).toBe(false); // 384 bytes, under the 1 KiB threshold
    // The .onnx holds only references: far smaller than the weights (which never passed through toBinary).
    const weightBytes = (k * h + h * n) * 4;
    expect(fs.statSync(extFile).size).toBeLessThan(2048);
    expect(fs.statSync(path.join(dir, 'ext.onnx_data')).size).toBeGreaterThanOrEqual(weightBytes);
  });

  it('runs in ORT by path and from bytes, with the same outputs as the inline model', async () => {
    const expected = await outputsByPath(inlineFile, 3);
    expect(await outputsByPath(extFile, 3)).toEqual(expected);
    expect(await outputsFromModel(loadModel(extFile), 3)).toEqual(expected);
  });

  it('checks the side file at load (it must exist), and reads tensor bytes lazily, when asked', () => {
    const side = path.join(dir, 'ext.onnx_data');
    const moved = path.join(dir, 'moved.bin');
    const loaded = loadModel(extFile);
    fs.renameSync(side, moved);
    try {
      expect(() => loadModel(extFile)).toThrow(/ext\.onnx_data .*does not exist/);
      // Loaded while the file was there: no bytes were read then, so reading now finds it gone.
      const w1 = loaded.proto.graph!.initializer.find((t) => t.name === 'w1')!;
      expect(() => tensorRawBytes(loaded, w1)).toThrow(/ext\.onnx_data .*does not exist/);
    } finally {
      fs.renameSync(moved, side);
    }
  });

  it('re-saves an external-data model elsewhere (copying tensors across), inline or external', async () => {
    const loaded = loadModel(extFile);
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    saveModel(loaded, path.join(sub, 'again.onnx'), { externalData: 'always', externalDataName: 'weights.bin' });
    saveModel(loaded, path.join(sub, 'flat.onnx'), { externalData: 'never' });
    expect(fs.readdirSync(sub).sort()).toEqual(['again.onnx', 'flat.onnx', 'weights.bin']);
    const expected = await outputsByPath(inlineFile, 5);
    expect(await outputsByPath(path.join(sub, 'again.onnx'), 5)).toEqual(expected);
    expect(await outputsByPath(path.join(sub, 'flat.onnx'), 5)).toEqual(expected);
    // Inlined again, it is byte-identical to the model saved inline from memory.
    expect(fs.readFileSync(path.join(sub, 'flat.onnx')).equals(fs.readFileSync(inlineFile))).toBe(true);
  });

  it("'auto' stays inline below the limit and goes external above it", () => {
    const f = path.join(dir, 'auto.onnx');
    saveModel(model, f);
    expect(fs.existsSync(path.join(dir, 'auto.onnx_data'))).toBe(false);
    expect(loadModel(f).proto.graph!.initializer.some(isExternal)).toBe(false);
    const total = (k * h + h + h * n) * 4;
    saveModel(model, f, { autoExternalBytes: total });
    expect(fs.existsSync(path.join(dir, 'auto.onnx_data'))).toBe(false);
    saveModel(model, f, { autoExternalBytes: total - 1 });
    expect(fs.existsSync(path.join(dir, 'auto.onnx_data'))).toBe(true);
    expect(loadModel(f).proto.graph!.initializer.filter(isExternal).map((t) => t.name)).toEqual(['w1', 'w2']);
  });

  it('copies a tensor larger than the 16 MiB copy chunk across intact', () => {
    const big = tinyMlp(DataType.FLOAT, 4096, 1100, 4, 51).model; // w1 is 17.2 MiB
    const bdir = tempDir('big');
    saveModel(big, path.join(bdir, 'a.onnx'), { externalData: 'always' });
    const a = loadModel(path.join(bdir, 'a.onnx'));
    saveModel(a, path.join(bdir, 'b.onnx'), { externalData: 'always' });
    const b = loadModel(path.join(bdir, 'b.onnx'));
    const original = big.proto.graph!.initializer[0];
    const copied = b.proto.graph!.initializer[0];
    expect(isExternal(copied)).toBe(true);
    expect(Buffer.from(tensorRawBytes(b, copied)).equals(Buffer.from(original.rawData))).toBe(true);
    expect(fs.statSync(path.join(bdir, 'b.onnx')).size).toBeLessThan(2048);
    fs.rmSync(bdir, { recursive: true });
  });

  it('refuses to write over the side file it reads from, and leaves both files intact', async () => {
    const before = [fs.readFileSync(extFile), fs.readFileSync(path.join(dir, 'ext.onnx_data'))];
    const loaded = loadModel(extFile);
    expect(() => saveModel(loaded, extFile, { externalData: 'always' })).toThrow(W4A8Error);
    expect(() => saveModel(loaded, extFile, { externalData: 'always' })).toThrow(/reads its weights from that file/);
    expect(fs.readFileSync(extFile).equals(before[0])).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'ext.onnx_data')).equals(before[1])).toBe(true);
    // Saving it inline over its own path is safe: the weights are read before the rename.
    const copyDir = tempDir('ext-same');
    for (const f of ['ext.onnx', 'ext.onnx_data']) fs.copyFileSync(path.join(dir, f), path.join(copyDir, f));
    const copy = loadModel(path.join(copyDir, 'ext.onnx'));
    saveModel(copy, path.join(copyDir, 'ext.onnx'), { externalData: 'never' });
    expect(await outputsByPath(path.join(copyDir, 'ext.onnx'), 9)).toEqual(await outputsByPath(inlineFile, 9));
    fs.rmSync(copyDir, { recursive: true });
  });

  it('a truncated side file gives a clear error and a failed save leaves no files behind', () => {
    const tdir = tempDir('trunc');
    for (const f of ['ext.onnx', 'ext.onnx_data']) fs.copyFileSync(path.join(dir, f), path.join(tdir, f));
    const loaded = loadModel(path.join(tdir, 'ext.onnx'));
    fs.truncateSync(path.join(tdir, 'ext.onnx_data'), 5000);
    // Truncated before loading: refused at load, naming the tensor and the file's size.
    expect(() => loadModel(path.join(tdir, 'ext.onnx'))).toThrow(/tensor "w1" needs bytes 0\.\.\d+ of .*which has only 5000 bytes \(truncated file\?\)/);
    // Truncated after loading: reading the tensor and saving fail the same way, and save leaves nothing.
    const w2 = loaded.proto.graph!.initializer.find((t) => t.name === 'w2')!;
    expect(() => tensorRawBytes(loaded, w2)).toThrow(/which has only 5000 bytes \(truncated file\?\)/);
    const out = path.join(tdir, 'out');
    fs.mkdirSync(out);
    expect(() => saveModel(loaded, path.join(out, 'm.onnx'), { externalData: 'always' })).toThrow(W4A8Error);
    expect(fs.readdirSync(out)).toEqual([]);
    fs.rmSync(tdir, { recursive: true });
  });
});
