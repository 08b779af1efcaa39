// Models whose weights live in external data, in every layout ONNX allows: one side file, one
// file per tensor in a subfolder, several tensors per file with and without a length entry.
// Calibration hands ONNX Runtime the rewritten graph as bytes plus the folder of the side files
// (ortModelSource): ORT opens them itself, so no side file ever passes through one Node buffer.
// The quantized result must not depend on the layout, and a probe on Buffer allocations shows
// that calibration allocates nothing the size of the side file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { calibrationWindows } from '../../lib/calib/calib_text';
import { captureStatistics } from '../../lib/calib/capture';
import { DataType } from '../../lib/onnx/dtype';
import { externalRef, isExternal } from '../../lib/onnx/external_data';
import { loadModel, modelBytes, serializeForOrt, type OnnxModel } from '../../lib/onnx/model';
import { makeExternalTensor, makeFloatTensorLike, tensorDims, tensorRawBytes } from '../../lib/onnx/tensor';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { randomFloats } from '../helpers/onnx_fixtures';
import { quantizeModel } from '../../lib/pipeline/quantize';
import { loadTokenizer } from '../../lib/tokenize/load';
import { CALIB_TEXT, STORIES_TOKENIZER, writeToyLm } from '../helpers/quant_fixtures';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-layouts-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Rewrites a model with one side file into `outDir` with the weights spread over several files:
 * even-numbered external tensors one file each under weights/, odd-numbered ones packed into
 * pack.bin (every other one without a length entry, as some exporters write).
 */
function splitSideFile(source: OnnxModel, outDir: string): string {
  fs.mkdirSync(path.join(outDir, 'weights'), { recursive: true });
  const pack = fs.openSync(path.join(outDir, 'pack.bin'), 'w');
  let packPos = 0;
  const graph = source.proto.graph!;
  let i = 0;
  const initializer = graph.initializer.map((t) => {
    if (!isExternal(t)) return t;
    const bytes = tensorRawBytes(source, t);
    const dims = tensorDims(t);
    let out;
    if (i % 2 === 0) {
      const location = `weights/${t.name}.bin`;
      fs.writeFileSync(path.join(outDir, location), bytes);
      out = makeExternalTensor(t.name, t.dataType, dims, location, 0, bytes.length);
    } else {
      packPos += 100; // unaligned on purpose
      fs.writeSync(pack, bytes, 0, bytes.length, packPos);
      out = makeExternalTensor(t.name, t.dataType, dims, 'pack.bin', packPos, bytes.length);
      if (i % 4 === 3) out.externalData = out.externalData.filter((e) => e.key !== 'length');
      packPos += bytes.length;
    }
    i++;
    return out;
  });
  fs.closeSync(pack);
  const proto = { ...source.proto, graph: { ...graph, initializer } };
  const file = path.join(outDir, 'model.onnx');
  fs.writeFileSync(file, modelBytes({ proto, dir: outDir }));
  fs.copyFileSync(STORIES_TOKENIZER, path.join(outDir, 'tok512.bin'));
  return file;
}

function sideFileBytes(model: OnnxModel): number {
  const files = new Set<string>();
  for (const t of model.proto.graph!.initializer) if (isExternal(t)) files.add(path.join(model.dir, externalRef(t).location));
  return [...files].reduce((s, f) => s + fs.statSync(f).size, 0);
}

/** Records the largest Buffer allocated while `fn` runs (every reader of ours allocates its buffers with Buffer.alloc*). */
async function probeLargest<T>(fn: () => Promise<T> | T): Promise<{ result: T; largestBuffer: number }> {
  let largestBuffer = 0;
  const real = { allocUnsafe: Buffer.allocUnsafe, alloc: Buffer.alloc, allocUnsafeSlow: Buffer.allocUnsafeSlow };
  const wrap = <K extends keyof typeof real>(key: K) =>
    jest.spyOn(Buffer, key).mockImplementation(((size: number, ...rest: unknown[]) => {
      largestBuffer = Math.max(largestBuffer, size);
      return (real[key] as (...a: unknown[]) => Buffer).call(Buffer, size, ...rest);
    }) as never);
  const active = [wrap('allocUnsafe'), wrap('alloc'), wrap('allocUnsafeSlow')];
  try {
    const result = await fn();
    return { result, largestBuffer };
  } finally {
    active.forEach((s) => s.mockRestore());
  }
}

describe('external data layouts', () => {
  let single: string;
  let split: string;
  beforeAll(() => {
    single = writeToyLm(path.join(dir, 'single'), { dtype: 'float32', external: true, dim: 64, seed: 5 });
    split = splitSideFile(loadModel(single), path.join(dir, 'split'));
  });

  it('a split side file holds the same tensors as the single one (the fixture is what it claims)', () => {
    const a = loadModel(single);
    const b = loadModel(split);
    const locations = new Set(b.proto.graph!.initializer.filter(isExternal).map((t) => externalRef(t).location));
    expect(locations.size).toBeGreaterThan(2);
    expect(new Set(a.proto.graph!.initializer.filter(isExternal).map((t) => externalRef(t).location)).size).toBe(1);
    for (const t of a.proto.graph!.initializer) {
      const u = b.proto.graph!.initializer.find((x) => x.name === t.name)!;
      expect(Buffer.from(tensorRawBytes(b, u)).equals(Buffer.from(tensorRawBytes(a, t)))).toBe(true);
    }
  });

  it('calibration reads no buffer the size of the side file (ORT opens the side files itself)', async () => {
    const model = loadModel(single);
    const side = sideFileBytes(model);
    const cw = calibrationWindows(fs.readFileSync(CALIB_TEXT, 'utf8'), 'calib', loadTokenizer(STORIES_TOKENIZER), 64, 256);
    const targets = [
      { input: 'normed', k: 64, dataType: DataType.FLOAT },
      { input: 'act', k: 64, dataType: DataType.FLOAT },
    ];
    // The probe itself: reading the model for ORT the old way (every side file into memory) trips it.
    const old = await probeLargest(() => serializeForOrt(model));
    expect(old.largestBuffer).toBeGreaterThanOrEqual(side);

    const probe = await probeLargest(() => captureStatistics(model, targets, cw.windows, { hessian: true, sampleRows: 64 }));
    console.log(`external_layouts: side file ${side} bytes; calibration's largest Buffer ${probe.largestBuffer} bytes`);
    expect(probe.result.get('normed')!.rows).toBe(256);
    expect(probe.largestBuffer).toBeLessThan(side / 2);
  });

  it('the split model calibrates to the same statistics as the single one', async () => {
    const cw = calibrationWindows(fs.readFileSync(CALIB_TEXT, 'utf8'), 'calib', loadTokenizer(STORIES_TOKENIZER), 64, 256);
    const targets = [{ input: 'act', k: 64, dataType: DataType.FLOAT }];
    const a = (await captureStatistics(loadModel(single), targets, cw.windows, { hessian: true, sampleRows: 32 })).get('act')!;
    const b = (await captureStatistics(loadModel(split), targets, cw.windows, { hessian: true, sampleRows: 32 })).get('act')!;
    expect(a.meanAbs.some((v) => v > 0)).toBe(true);
    expect(Array.from(b.hessian!)).toEqual(Array.from(a.hessian!));
    expect(Array.from(b.sample)).toEqual(Array.from(a.sample));
  });

  it.each(['matmulnbits', 'sim'] as const)('GPTQ quantizes single and split side files to the same %s model', async (format) => {
    const outputs: OnnxModel[] = [];
    for (const [name, input] of [['single', single], ['split', split]] as const) {
      const output = path.join(dir, `out-${format}-${name}`, 'model.onnx');
      const summary = await quantizeModel({
        input, output, method: 'gptq', wformat: 'int4', groupSize: 32, format,
        calib: CALIB_TEXT, calibTokens: 256, calibSeqlen: 64,
      });
      expect(summary.layers.length).toBeGreaterThan(0);
      outputs.push(loadModel(output));
    }
    const [a, b] = outputs;
    const names = a.proto.graph!.initializer.map((t) => t.name);
    expect(b.proto.graph!.initializer.map((t) => t.name)).toEqual(names);
    for (const t of a.proto.graph!.initializer) {
      const u = b.proto.graph!.initializer.find((x) => x.name === t.name)!;
      expect({ name: t.name, same: Buffer.from(tensorRawBytes(b, u)).equals(Buffer.from(tensorRawBytes(a, t))) }).toEqual({ name: t.name, same: true });
    }
  });
});

// A side file over 2 GiB (more than fs.readFileSync takes; handing it to ORT as bytes needed a
// 2 GiB Buffer): GPTQ calibrates through ORT, which
// maps the file itself, and the 2.15 GB embedding is copied streamed into the output. The input
// side file is sparse (ftruncate plus markers), so only the output costs disk.
const VOCAB = 8_400_000;
const DIM = 64;
const EMBED_BYTES = VOCAB * DIM * 4; // 2,150,400,000 > 2^31
const NEED_BYTES = EMBED_BYTES + 512 * 2 ** 20;
const free = (() => {
  const st = fs.statfsSync(os.tmpdir());
  return st.bavail * st.bsize;
})();
if (free < NEED_BYTES) console.log(`SKIP: external_layouts: ${os.tmpdir()} has ${free} bytes free, the 2 GiB side-file test needs ${NEED_BYTES}`);
const withRoom = free >= NEED_BYTES ? it : it.skip;

describe('a side file over 2 GiB', () => {
  withRoom('calibrates (GPTQ) with ORT reading the side file itself, and the embedding is copied streamed', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-big-side-'));
    try {
      const inDir = path.join(base, 'in');
      fs.mkdirSync(inDir);
      const side = path.join(inDir, 'model.onnx_data');
      const fd = fs.openSync(side, 'w');
      fs.ftruncateSync(fd, EMBED_BYTES);
      const marker = EMBED_BYTES - 4;
      fs.writeSync(fd, Buffer.from(new Float32Array([3.125]).buffer), 0, 4, marker);
      // Token ids below 512 read the first rows: give them values so the activations are not all zero.
      fs.writeSync(fd, Buffer.from(randomFloats(512 * DIM, 21, 1).buffer), 0, 512 * DIM * 4, 0);
      fs.closeSync(fd);
      const model = makeModel(
        {
          name: 'big_side_file',
          nodes: [
            makeNode('Gather', ['embed.weight', 'input_ids'], ['emb'], {}, { name: 'embed/Gather' }),
            makeNode('MatMul', ['emb', 'q_proj.weight'], ['q'], {}, { name: 'q_proj/MatMul' }),
            makeNode('MatMul', ['q', 'lm_head.weight'], ['logits'], {}, { name: 'lm_head/MatMul' }),
          ],
          inputs: [makeValueInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
          outputs: [makeValueInfo('logits', DataType.FLOAT, ['batch', 'seq', 512])],
          initializers: [
            makeExternalTensor('embed.weight', DataType.FLOAT, [VOCAB, DIM], 'model.onnx_data', 0, EMBED_BYTES),
            makeFloatTensorLike('q_proj.weight', DataType.FLOAT, [DIM, DIM], randomFloats(DIM * DIM, 22, 0.3)),
            makeFloatTensorLike('lm_head.weight', DataType.FLOAT, [DIM, 512], randomFloats(DIM * 512, 23, 0.3)),
          ],
        },
        [{ domain: '', version: 17 }],
        { dir: inDir },
      );
      fs.writeFileSync(path.join(inDir, 'model.onnx'), modelBytes(model));

      const out = path.join(base, 'out', 'model.onnx');
      const summary = await quantizeModel({
        input: path.join(inDir, 'model.onnx'), output: out, method: 'gptq', wformat: 'int4', groupSize: 32, format: 'matmulnbits',
        calib: CALIB_TEXT, tokenizer: STORIES_TOKENIZER, calibTokens: 256, calibSeqlen: 64,
      });
      expect(summary.calibTokens).toBe(256);
      expect(summary.layers.map((l) => [l.name, l.method])).toEqual([['q_proj/MatMul', 'gptq']]);
      expect(summary.layers[0].errorAfter).toBeGreaterThan(0);
      const written = loadModel(out);
      const embed = written.proto.graph!.initializer.find((t) => t.name === 'embed.weight')!;
      const ref = externalRef(embed);
      expect(ref.length).toBe(EMBED_BYTES);
      const b = Buffer.alloc(4);
      const ofd = fs.openSync(path.join(path.dirname(out), ref.location), 'r');
      fs.readSync(ofd, b, 0, 4, ref.offset + marker);
      fs.closeSync(ofd);
      expect(b.readFloatLE(0)).toBe(3.125);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  }, 600_000);
});
