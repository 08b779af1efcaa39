// The addon's ONNX Runtime entry points: without a library the addon still loads and its kernels
// run (a missing or wrong library is an error naming the path, in a fresh process so that no
// library is open yet); the session wrappers validate before the native call; the runtime library
// path resolves inside the installed onnxruntime-node.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertBuiltCli } from '../helpers/built_cli';
import * as ort from 'onnxruntime-node';
import { DataType } from '../../lib/onnx/dtype';
import { saveModel } from '../../lib/onnx/model';
import { createOrtSession, openOrtLibrary, releaseOrtSession, runOrtSession, type OrtSessionHandle } from '../../lib/native/ort_runtime';
import { onnxruntimeLibraryPath, w4a8EngineSessionConfig } from '../../lib/ort/engine_session';
import { randomFloats, tempDir, tinyMlp } from '../helpers/onnx_fixtures';

const ROOT = path.resolve(__dirname, '..', '..');

beforeAll(assertBuiltCli);

describe('addon ONNX Runtime', () => {
  test('the addon works with no ONNX Runtime library, and a bad path is a clear error', () => {
    // A child process: this jest worker may already hold the real library open.
    const script = `
      const { openOrtLibrary, createOrtSession } = require('./dist/native/ort_runtime');
      const out = {};
      try { openOrtLibrary('/nonexistent/libonnxruntime.so.1'); out.open = 'opened'; } catch (e) { out.open = e.name + ': ' + e.message; }
      try { openOrtLibrary('/lib/x86_64-linux-gnu/libc.so.6'); out.libc = 'opened'; } catch (e) { out.libc = e.message; }
      createOrtSession('/x.onnx').then(() => { out.session = 'created'; }, (e) => { out.session = e.message; }).then(() => {
        // A kernel call after the failed opens: W4A16 of a 1x16 weight (all codes 9, zero point 8, scale 0.5) and x = 1.
        const b = require('./dist/native/binding').native();
        const w = b.cpuPrepackWeight(0, 1, 16, 16, new Uint8Array(8).fill(0x99), Float32Array.of(0.5), null, null, true, true);
        const y = new Float32Array(1);
        b.cpuGemmW4A16(w, new Float32Array(16).fill(1), 1, y, null, null, true);
        out.kernels = y[0];
        console.log(JSON.stringify(out));
      });`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.open).toMatch(/^W4A8Error: cannot open ONNX Runtime from \/nonexistent\/libonnxruntime\.so\.1/);
    expect(out.libc).toMatch(/does not export OrtGetApiBase; not an ONNX Runtime library/);
    expect(out.session).toMatch(/ONNX Runtime is not open/);
    expect(out.kernels).toBe(8);  // 16 * (9 - 8) * 0.5
  }, 60_000);

  test('resolves libonnxruntime.so.1 inside the installed onnxruntime-node', () => {
    const p = onnxruntimeLibraryPath();
    expect(p).toMatch(/onnxruntime-node[\\/]bin[\\/]napi-v\d+[\\/]/);
    expect(fs.existsSync(p)).toBe(true);
  });

  test("the w4a8 engine's threads spin, unless W4A8MatMul runs on our own pool", () => {
    // ORT's workers spin between a decode step's parallel loops (its own default); with W4A8_OP_THREADS=pool
    // ours do the work and ORT's must not spin beside them.
    expect(w4a8EngineSessionConfig({})).toEqual({ 'session.intra_op.allow_spinning': '1' });
    expect(w4a8EngineSessionConfig({ W4A8_OP_THREADS: 'pool' })).toEqual({ 'session.intra_op.allow_spinning': '0' });
    expect(w4a8EngineSessionConfig({ W4A8_OP_THREADS: 'ort' })).toEqual({ 'session.intra_op.allow_spinning': '1' });
  });

  test('wrappers refuse bad arguments before the native call', async () => {
    await expect(createOrtSession('' as string)).rejects.toThrow(TypeError);
    const fake = { handle: {} } as unknown as OrtSessionHandle;
    await expect(runOrtSession(fake, 'x' as never, ['y'])).rejects.toThrow(/Expected feeds to be an array/);
    await expect(runOrtSession(fake, [], [])).rejects.toThrow(/non-empty array of output names/);
    await expect(runOrtSession(fake, [{ name: 'a', type: 1, dims: [-1], data: new Float32Array(0) }], ['y'])).rejects.toThrow(RangeError);
  });

  // Outputs of 256 KiB or more come back over ORT's own buffer: they must stay intact after later
  // runs (whose outputs could reuse freed arena memory) and after the session is gone.
  test('large outputs are borrowed from ORT and outlive later runs and the session; lastRowOf returns the last row', async () => {
    const seed = 4242;
    console.log(`ort_runtime borrowed-output test seed ${seed}`);
    const [k, h, n, batch] = [16, 24, 257, 300];
    const dir = tempDir('ort-runtime-outputs');
    try {
      const file = path.join(dir, 'mlp.onnx');
      saveModel(tinyMlp(DataType.FLOAT, k, h, n, seed).model, file, { externalData: 'never' });
      const reference = await ort.InferenceSession.create(file);
      const expected = async (x: Float32Array) => (await reference.run({ x: new ort.Tensor('float32', x, [batch, k]) })).y.data as Float32Array;
      openOrtLibrary(onnxruntimeLibraryPath());
      const session = await createOrtSession(file, { intraOpNumThreads: 1 });
      const x1 = randomFloats(batch * k, seed + 10);
      const x2 = randomFloats(batch * k, seed + 11);
      const feed = (x: Float32Array) => [{ name: 'x', type: 1, dims: [batch, k], data: x }];
      const [first] = await runOrtSession(session, feed(x1), ['y']);
      expect(first.dims).toEqual([batch, n]);
      expect(first.data.byteLength).toBe(batch * n * 4);  // >= 256 KiB: the borrowed path
      const firstCopy = new Float32Array(first.data).slice();
      const [last] = await runOrtSession(session, feed(x2), ['y'], ['y']);
      expect(last.dims).toEqual([1, n]);
      for (let r = 0; r < 5; ++r) await runOrtSession(session, feed(r % 2 ? x1 : x2), ['y']);
      releaseOrtSession(session);
      const e1 = await expected(x1);
      const e2 = await expected(x2);
      await reference.release();
      const got = new Float32Array(first.data);
      let worst = 0;
      for (let i = 0; i < got.length; ++i) worst = Math.max(worst, Math.abs(got[i] - e1[i]));
      expect(worst).toBeLessThan(1e-4);
      expect(Array.from(got)).toEqual(Array.from(firstCopy));
      const lastRow = new Float32Array(last.data);
      for (let j = 0; j < n; ++j) expect(Math.abs(lastRow[j] - e2[(batch - 1) * n + j])).toBeLessThan(1e-4);
      await expect(runOrtSession(session, feed(x1), ['y'], ['z'])).rejects.toThrow(/lastRowOf/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
