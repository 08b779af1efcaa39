// Quantization in slices of output channels (lib/quant/streamed_layer.ts), the path of weights
// over 2 GiB, run here on small models by lowering the threshold to 1 byte and the slice to a
// few channels (an odd count, so the last slice is short). RTN treats output channels
// independently, so the sliced result must equal the whole-tensor one byte for byte in every
// export format; GPTQ too up to float rounding (same Hessian, same column order).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { makeFloatTensorLike, tensorRawBytes } from '../../lib/onnx/tensor';
import { quantizeModel, type QuantizeModelOptions } from '../../lib/pipeline/quantize';
import { W4A8Error } from '../../lib/util/errors';
import { randomFloats } from '../helpers/onnx_fixtures';
import { CALIB_TEXT, writeToyLm } from '../helpers/quant_fixtures';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-streamed-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Every initializer's bytes by name (external ones read from the side file). */
function initializerBytes(file: string): Map<string, Buffer> {
  const m = loadModel(file);
  return new Map(m.proto.graph!.initializer.map((t) => [t.name, Buffer.from(tensorRawBytes(m, t))]));
}

function expectSameInitializers(a: string, b: string): void {
  const x = initializerBytes(a);
  const y = initializerBytes(b);
  expect([...y.keys()].sort()).toEqual([...x.keys()].sort());
  for (const [name, bytes] of x) expect({ name, equal: bytes.equals(y.get(name)!) }).toEqual({ name, equal: true });
}

// 5 channels of K = 64 fp32 per slice: q_proj (N 64) takes 13 slices, the last of 4 channels.
const SLICED = { streamedWeightBytes: 1, sliceBytes: 64 * 4 * 5 };

async function both(model: string, tag: string, opts: Partial<QuantizeModelOptions>) {
  const whole = path.join(dir, tag, 'whole', 'q.onnx');
  const sliced = path.join(dir, tag, 'sliced', 'q.onnx');
  const a = await quantizeModel({ input: model, output: whole, ...opts });
  const b = await quantizeModel({ input: model, output: sliced, ...opts, ...SLICED });
  return { whole, sliced, a, b };
}

describe('quantization in slices of output channels', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    const model = () => writeToyLm(path.join(dir, `toy-${dtype}`), { dtype, external: true, seed: 21 });
    for (const format of ['matmulnbits', 'qdq', 'w4a8', 'sim'] as const) {
      it(`RTN ${dtype} --format ${format}: sliced equals whole, byte for byte`, async () => {
        const symmetric = format === 'qdq';
        const { whole, sliced, a, b } = await both(model(), `${dtype}-${format}`, { method: 'rtn', wformat: 'int4', groupSize: 32, symmetric, format, keepLogits: false });
        expect(b.layers.map((l) => l.name)).toEqual(a.layers.map((l) => l.name));
        expect(b.layers.every((l) => (l.slices ?? 0) >= Math.ceil(l.n / 5))).toBe(true);
        expect(a.layers.every((l) => l.slices === undefined)).toBe(true);
        expectSameInitializers(whole, sliced);
      }, 60_000);
    }
  }

  it('RTN per channel, fp4 (sim): sliced equals whole', async () => {
    const model = writeToyLm(path.join(dir, 'toy-pc'), { dtype: 'float32', external: true, seed: 22 });
    const { whole, sliced } = await both(model, 'pc', { method: 'rtn', wformat: 'fp4', groupSize: 0, format: 'sim', keepLogits: false });
    expectSameInitializers(whole, sliced);
  }, 60_000);

  it('a Gemm with transB (weight stored [N, K]) is sliced from contiguous rows: sliced equals whole', async () => {
    const K = 48;
    const N = 37;
    const d = path.join(dir, 'gemm');
    fs.mkdirSync(d, { recursive: true });
    const seed = 23;
    console.log(`streamed_quant: Gemm transB weight seed ${seed}`);
    const m = makeModel(
      {
        name: 'gemm_transb',
        nodes: [makeNode('Gemm', ['x', 'w'], ['h'], { transB: 1 }, { name: 'proj/Gemm' }), makeNode('Relu', ['h'], ['y'])],
        inputs: [makeValueInfo('x', DataType.FLOAT, [2, K])],
        outputs: [makeValueInfo('y', DataType.FLOAT, [2, N])],
        initializers: [makeFloatTensorLike('w', DataType.FLOAT, [N, K], randomFloats(N * K, seed, 0.5))],
      },
      [{ domain: '', version: 17 }],
      { dir: d },
    );
    const file = path.join(d, 'model.onnx');
    saveModel(m, file, { externalData: 'always', inlineThresholdBytes: 0 });
    for (const format of ['matmulnbits', 'sim'] as const) {
      const whole = path.join(d, format, 'whole', 'q.onnx');
      const sliced = path.join(d, format, 'sliced', 'q.onnx');
      await quantizeModel({ input: file, output: whole, method: 'rtn', groupSize: 16, format });
      const r = await quantizeModel({ input: file, output: sliced, method: 'rtn', groupSize: 16, format, streamedWeightBytes: 1, sliceBytes: K * 4 * 3 });
      expect(r.layers[0].slices).toBe(Math.ceil(N / 3));
      expectSameInitializers(whole, sliced);
    }
  }, 60_000);

  it('GPTQ: sliced agrees with whole (one Hessian, channels independent)', async () => {
    const model = writeToyLm(path.join(dir, 'toy-gptq'), { dtype: 'float32', external: true, seed: 24 });
    const opts: Partial<QuantizeModelOptions> = { method: 'gptq', groupSize: 32, format: 'matmulnbits', calib: CALIB_TEXT, calibTokens: 512, calibSeqlen: 64 };
    const { whole, sliced, b } = await both(model, 'gptq', opts);
    expect(b.layers.every((l) => l.slices !== undefined && l.method === 'gptq')).toBe(true);
    const x = initializerBytes(whole);
    const y = initializerBytes(sliced);
    for (const [name, codes] of x) {
      if (!name.endsWith('_Q4')) continue;
      const other = y.get(name)!;
      let same = 0;
      for (let i = 0; i < codes.length; i++) if (codes[i] === other[i]) same++;
      console.log(`streamed_quant: GPTQ ${name}: ${same} of ${codes.length} code bytes equal`);
      expect(same / codes.length).toBeGreaterThan(0.99);
    }
  }, 120_000);

  // A streamed export writes the arrays of layers reading one input back to back in its side file, so the
  // fused decoder merges q|k|v and gate|up there too, by one reference spanning each run: the same tensors,
  // byte for byte, as the export that holds the whole model in memory, and the same logits.
  it('--format w4a8 merges the projections in a streamed export as in memory', async () => {
    const { importRandomLlama } = await import('../../lib/import/llama2c_random');
    const { openDecoder } = await import('../../lib/ort/session');
    const seed = 26;
    console.log(`streamed_quant: merged projections, tiny-1m seed ${seed}`);
    const streamedIn = (await importRandomLlama('tiny-1m', path.join(dir, 'merge', 'fp32'), { layers: 2, seed })).modelPath;
    const inMemory = path.join(dir, 'merge', 'one-file', 'model.onnx');
    fs.mkdirSync(path.dirname(inMemory), { recursive: true });
    saveModel(loadModel(streamedIn), inMemory, { externalData: 'never' });
    const opts = { method: 'rtn', groupSize: 32, format: 'w4a8', keepLogits: false } as const;
    const a = await quantizeModel({ input: streamedIn, output: path.join(dir, 'merge', 'streamed', 'q.onnx'), ...opts });
    const b = await quantizeModel({ input: inMemory, output: path.join(dir, 'merge', 'memory', 'q.onnx'), ...opts });
    for (const r of [a, b]) expect(r.export.notes.join('\n')).toMatch(/4 group\(s\) of projections merged/);
    expect(a.export.notes.join('\n')).not.toMatch(/left apart/);
    const streamed = loadModel(a.output);
    const merged = streamed.proto.graph!.initializer.filter((t) => t.name.endsWith('_merged'));
    expect(merged.length).toBe(4 * 3); // codes, scales, zero points of each merged node
    // In the side file, referenced there: every merged array of 1 KiB or more (smaller runs stay inline).
    const external = merged.filter((t) => t.externalData.some((e) => e.key === 'location'));
    expect(external.length).toBeGreaterThanOrEqual(8);
    expect(merged.filter((t) => !external.includes(t)).every((t) => t.rawData.length < 1024)).toBe(true);
    expectSameInitializers(a.output, b.output);
    const ids = [1, 17, 301, 45, 9, 260, 3];
    const [x, y] = [await openDecoder(a.output), await openDecoder(b.output)];
    try {
      const [lx, ly] = [await x.logits(ids), await y.logits(ids)];
      expect(Array.from(lx.data)).toEqual(Array.from(ly.data));
    } finally {
      await x.release();
      await y.release();
    }
  }, 120_000);

  it('refuses, before any work, what needs a sliced layer whole; NaN in a slice is named', async () => {
    const model = writeToyLm(path.join(dir, 'toy-refuse'), { dtype: 'float32', external: true, seed: 25 });
    const out = path.join(dir, 'refuse', 'q.onnx');
    const cases: [Partial<QuantizeModelOptions>, RegExp][] = [
      [{ method: 'awq', calib: CALIB_TEXT }, /layer "q_proj\/MatMul": its weight "q_proj.weight" \[64, 64\] is .* quantized in slices of output channels, which --method awq .* cannot do; use --method rtn or gptq/],
      [{ method: 'rtn', grouping: 'ic', format: 'sim' }, /which --grouping ic/],
      [{ method: 'rtn', compensate: 'lorc', compensateRank: 4 } as Partial<QuantizeModelOptions>, /which --compensate lorc/],
    ];
    for (const [opts, message] of cases) {
      await expect(quantizeModel({ input: model, output: out, ...opts, ...SLICED })).rejects.toThrow(message);
      expect(fs.existsSync(path.dirname(out)) ? fs.readdirSync(path.dirname(out)) : []).toEqual([]);
    }
    const nan = writeToyLm(path.join(dir, 'toy-nan'), { dtype: 'float32', external: true, seed: 26, nanWeight: true });
    const err = await quantizeModel({ input: nan, output: out, method: 'rtn', ...SLICED }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(W4A8Error);
    expect((err as Error).message).toMatch(/weight "down_proj.weight" of layer "down_proj\/MatMul" holds NaN\/Inf values \(1 in output channels 5\.\.9\)/);
    expect(fs.existsSync(path.dirname(out)) ? fs.readdirSync(path.dirname(out)) : []).toEqual([]);
    await expect(quantizeModel({ input: model, output: out, method: 'rtn', sliceBytes: 0 })).rejects.toThrow(RangeError);
  }, 60_000);
});
