// Imports stream their weights into the side file: a transposed weight is written in blocks of
// source rows (never whole in memory), and a streamed llama2.c import holds the same tensors as
// the in-memory one.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ImportSideFile } from '../../lib/import/side_sink';
import { importLlama2c } from '../../lib/import/llama2c';
import { loadModel } from '../../lib/onnx/model';
import { externalRef, isExternal } from '../../lib/onnx/external_data';
import { tensorDims, tensorRawBytes, tensorToFloat32 } from '../../lib/onnx/tensor';
import { transposeMatrix } from '../../lib/native/tensor_layout';
import { SHARED_DIR } from '../helpers/shared_paths';
import { randomFloats } from '../helpers/onnx_fixtures';

const CKPT = path.join(SHARED_DIR, 'models', 'stories260K', 'stories260K.bin');
const TOK = path.join(SHARED_DIR, 'models', 'stories260K', 'tok512.bin');

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-import-streamed-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ImportSideFile.writeTransposed', () => {
  it.each([
    [37, 53, 64], // blocks of 1 row (64 / 53)
    [100, 7, 50], // blocks of 7 rows, a short last block
    [64, 64, 1 << 20], // one block: the whole matrix
  ])('rows %i x cols %i with blocks of %i values equals the whole transpose', async (rows, cols, blockValues) => {
    const seed = rows * 1000 + cols;
    console.log(`import_streamed: seed ${seed}`);
    const src = randomFloats(rows * cols, seed, 1);
    const file = path.join(dir, `t-${rows}x${cols}.bin`);
    const side = new ImportSideFile(file, path.basename(file), blockValues);
    side.write('first', [3], new Float32Array([1, 2, 3])); // the next tensor starts aligned, not at 0
    const t = await side.writeTransposed('w', src, rows, cols);
    side.finish();
    expect(tensorDims(t)).toEqual([cols, rows]);
    expect(externalRef(t).offset).toBe(4096);
    const got = tensorToFloat32({ dir }, t);
    const want = await transposeMatrix(src, rows, cols);
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    // And by index, independent of any transpose routine: wT[c][r] = src[r][c].
    for (const [r, c] of [[0, 0], [rows - 1, 0], [0, cols - 1], [rows - 1, cols - 1], [rows >> 1, cols >> 1]]) {
      expect(got[c * rows + r]).toBe(src[r * cols + c]);
    }
  });
});

describe('importLlama2c streamed', () => {
  it('a streamed import of stories260K holds the tensors of the in-memory import, in one side file', async () => {
    const inMemory = await importLlama2c(CKPT, TOK, path.join(dir, 'memory'));
    const streamed = await importLlama2c(CKPT, TOK, path.join(dir, 'streamed'), undefined, { streamAboveBytes: 0 });
    const a = loadModel(inMemory.modelPath);
    const b = loadModel(streamed.modelPath);
    expect(a.proto.graph!.initializer.some(isExternal)).toBe(false);
    const external = b.proto.graph!.initializer.filter(isExternal);
    expect(external.length).toBeGreaterThan(30);
    expect(new Set(external.map((t) => externalRef(t).location))).toEqual(new Set(['model.onnx_data']));
    expect(b.proto.graph!.initializer.map((t) => t.name)).toEqual(a.proto.graph!.initializer.map((t) => t.name));
    expect(b.proto.graph!.node).toEqual(a.proto.graph!.node);
    for (const t of a.proto.graph!.initializer) {
      const u = b.proto.graph!.initializer.find((x) => x.name === t.name)!;
      expect({ name: t.name, same: Buffer.from(tensorRawBytes(b, u)).equals(Buffer.from(tensorRawBytes(a, t))) }).toEqual({ name: t.name, same: true });
    }
  });
});
