// Per-channel weights (--group 0) at K = 4096, as every projection of a 7B model has: they are stored
// as 128-wide blocks repeating the channel's scale, so every export format carries them. One MatMul
// is quantized once per format; each ONNX output runs in onnxruntime-node, the w4a8 one on the CPU
// kernels in the addon's ONNX Runtime session. All must agree with the sim export (the same
// dequantized weights as float initializers) to float rounding, and with the float model within int4 per-channel error.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { PER_CHANNEL_BLOCK_SIZE } from '../../lib/native/formats';
import { fillRandom, relativeErrorL2 } from '../../lib/native/kernels';
import { openW4A8Session } from '../../lib/ort/engine_session';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { quantizeModel } from '../../lib/pipeline/quantize';
import type { ExportFormat } from '../../lib/quant/config';

const K = 4096, N = 48, M = 5;

let dir: string;
let input: string;
let x: Float32Array;
let yFloat: Float32Array;
const outputs = new Map<ExportFormat, Float32Array>();

async function runOnnx(file: string, sessionConfig?: Record<string, string>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file, { extra: { session: sessionConfig ?? {} } } as ort.InferenceSession.SessionOptions);
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [M, K]) });
    return (out.y.data as Float32Array).slice();
  } finally {
    await session.release();
  }
}

function blockSizes(file: string): number[] {
  return loadModel(file).proto.graph!.node.flatMap((node) =>
    node.attribute.filter((a) => a.name === 'block_size').map((a) => Number(a.i)));
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-per-channel-'));
  const w = new Float32Array(K * N);
  fillRandom(w, 41, 0, 0.02, true);
  // Channels of different magnitudes: one scale per channel has to follow them.
  for (let i = 0; i < w.length; i++) w[i] *= 1 + (i % N) / 8;
  const model = makeModel({
    name: 'one_matmul', nodes: [makeNode('MatMul', ['x', 'W'], ['y'], {}, { name: 'proj' })],
    inputs: [makeValueInfo('x', DataType.FLOAT, ['m', K])], outputs: [makeValueInfo('y', DataType.FLOAT, ['m', N])],
    initializers: [makeFloatTensorLike('W', DataType.FLOAT, [K, N], w)],
  }, [{ domain: '', version: 21 }]);
  input = path.join(dir, 'one_matmul.onnx');
  saveModel(model, input);
  x = new Float32Array(M * K);
  fillRandom(x, 42, 0, 1, true);
  yFloat = await runOnnx(input);
}, 60_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('per-channel (groupSize 0) at K = 4096', () => {
  // Activations stay float so the formats must agree to rounding: only the weight layout differs.
  it.each(['sim', 'matmulnbits', 'qdq'] as ExportFormat[])('%s runs in ONNX Runtime', async (format) => {
    const out = path.join(dir, `${format}.onnx`);
    const summary = await quantizeModel({ input, output: out, method: 'rtn', groupSize: 0, aformat: 'none', format, keepLogits: false });
    expect(summary.layers.map((l) => [l.name, l.k, l.groupSize])).toEqual([['proj', K, PER_CHANNEL_BLOCK_SIZE]]);
    if (format !== 'sim') expect(blockSizes(out)).toEqual([PER_CHANNEL_BLOCK_SIZE]);
    const y = await runOnnx(out, summary.export.sessionConfig);
    outputs.set(format, y);
    // int4 asymmetric per-channel RTN of 4096 normal weights per channel: about 15% relative output error.
    expect(relativeErrorL2(y, new Float64Array(yFloat))).toBeLessThan(0.2);
    const sim = outputs.get('sim')!;
    expect(relativeErrorL2(y, new Float64Array(sim))).toBeLessThan(1e-5);
  }, 60_000);

  it('matmulnbits with int8 activations (accuracy_level 4, the W4A8 path) stays close', async () => {
    const out = path.join(dir, 'matmulnbits-a8.onnx');
    const summary = await quantizeModel({ input, output: out, method: 'rtn', groupSize: 0, aformat: 'int8', format: 'matmulnbits', keepLogits: false });
    const y = await runOnnx(out, summary.export.sessionConfig);
    expect(relativeErrorL2(y, new Float64Array(yFloat))).toBeLessThan(0.2);
    // int8 activations add well under 1% to the weight error.
    expect(relativeErrorL2(y, new Float64Array(outputs.get('sim')!))).toBeLessThan(0.02);
  }, 60_000);

  it('w4a8 runs on the CPU kernels inside ONNX Runtime (the addon session) with the same weights', async () => {
    const out = path.join(dir, 'w4a8.onnx');
    await quantizeModel({ input, output: out, method: 'rtn', groupSize: 0, aformat: 'none', format: 'w4a8', keepLogits: false });
    expect(blockSizes(out)).toEqual([PER_CHANNEL_BLOCK_SIZE]);
    const session = await openW4A8Session(out);
    try {
      const y = (await session.run({ x: new ort.Tensor('float32', x, [M, K]) }, ['y'])).y.data as Float32Array;
      expect(relativeErrorL2(y, new Float64Array(yFloat))).toBeLessThan(0.2);
      expect(relativeErrorL2(y, new Float64Array(outputs.get('sim')!))).toBeLessThan(1e-5);
    } finally {
      await session.release();
    }
  }, 60_000);
});
