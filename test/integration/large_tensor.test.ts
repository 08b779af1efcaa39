// Tensors over 2 GiB. An fp32 embedding of 8.4M x 64 (2.15 GB: as large as LLaMA-3's 128K x
// 4096) is read, kept in float and written streamed: quantize copies it into the new side file in
// bounded chunks, never one Buffer per tensor. A MatMul weight of 2.15 GB is quantized with RTN in
// slices of output channels, and its marker blocks checked against the quantizer run on them alone.
// The input side files are sparse (created with ftruncate, markers written at a few offsets, one
// past 2 GiB), so only the outputs cost disk. Skipped, with the reason printed, when the disk
// lacks room.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, modelBytes } from '../../lib/onnx/model';
import { externalRef } from '../../lib/onnx/external_data';
import { makeExternalTensor, makeFloatTensorLike } from '../../lib/onnx/tensor';
import { quantizeModel } from '../../lib/pipeline/quantize';
import { CancelToken } from '../../lib/util/cancel';
import { CancelledError } from '../../lib/util/errors';
import { summarizeModel } from '../../lib/onnx/inspect';
import { randomFloats } from '../helpers/onnx_fixtures';
import { quantizeWeight } from '../../lib/native/quant';

const DIM = 64;
const VOCAB = 8_400_000; // 8.4M x 64 x 4 bytes = 2,150,400,000 > 2^31
const EMBED_BYTES = VOCAB * DIM * 4;
const NEED_BYTES = EMBED_BYTES + 512 * 2 ** 20; // the output side file, plus room to spare

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

const tmp = os.tmpdir();
const free = freeBytes(tmp);
const enough = free >= NEED_BYTES;
if (!enough) console.log(`SKIP: large_tensor: ${tmp} has ${free} bytes free, the test needs ${NEED_BYTES}`);
const maybe = enough ? it : it.skip;

describe('tensors of 2 GiB and more', () => {
  maybe('an embedding of 2.15 GB is kept in float and copied streamed; quantized layers beside it', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'w4a8-large-'));
    try {
      const inDir = path.join(dir, 'in');
      fs.mkdirSync(inDir);
      const side = path.join(inDir, 'model.onnx_data');
      // Markers: (offset, value) pairs in the embedding, one of them past 2 GiB and one at its end.
      const markers: [number, number][] = [
        [0, 1.5],
        [2 ** 31 + 4096, -2.25],
        [EMBED_BYTES - 4, 3.125],
      ];
      const fd = fs.openSync(side, 'w');
      fs.ftruncateSync(fd, EMBED_BYTES);
      for (const [off, v] of markers) fs.writeSync(fd, Buffer.from(new Float32Array([v]).buffer), 0, 4, off);
      fs.closeSync(fd);
      const model = makeModel(
        {
          name: 'large_embedding',
          nodes: [
            makeNode('Gather', ['embed.weight', 'input_ids'], ['emb'], {}, { name: 'embed/Gather' }),
            makeNode('MatMul', ['emb', 'q_proj.weight'], ['q'], {}, { name: 'q_proj/MatMul' }),
            makeNode('MatMul', ['q', 'lm_head.weight'], ['logits'], {}, { name: 'lm_head/MatMul' }),
          ],
          inputs: [makeValueInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
          outputs: [makeValueInfo('logits', DataType.FLOAT, ['batch', 'seq', 512])],
          initializers: [
            makeExternalTensor('embed.weight', DataType.FLOAT, [VOCAB, DIM], 'model.onnx_data', 0, EMBED_BYTES),
            makeFloatTensorLike('q_proj.weight', DataType.FLOAT, [DIM, DIM], randomFloats(DIM * DIM, 11, 0.3)),
            makeFloatTensorLike('lm_head.weight', DataType.FLOAT, [DIM, 512], randomFloats(DIM * 512, 12, 0.3)),
          ],
        },
        [{ domain: '', version: 17 }],
        { dir: inDir },
      );
      fs.writeFileSync(path.join(inDir, 'model.onnx'), modelBytes(model));

      const rssBefore = process.memoryUsage().rss;
      const info = summarizeModel(loadModel(path.join(inDir, 'model.onnx')));
      expect(JSON.stringify(info)).toContain('embed.weight');

      const out = path.join(dir, 'out', 'model.onnx');
      const summary = await quantizeModel({ input: path.join(inDir, 'model.onnx'), output: out, method: 'rtn', wformat: 'int4', groupSize: 32, format: 'matmulnbits' });
      expect(summary.layers.map((l) => l.name)).toEqual(['q_proj/MatMul']);
      const rssAfter = process.memoryUsage().rss;
      console.log(`large_tensor: embedding ${EMBED_BYTES} bytes; resident memory ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rssAfter / 2 ** 20).toFixed(0)} MiB`);
      // Streamed: the process never held the tensor (2 GiB) at once.
      expect(rssAfter - rssBefore).toBeLessThan(1024 * 2 ** 20);

      const written = loadModel(out);
      const embed = written.proto.graph!.initializer.find((t) => t.name === 'embed.weight')!;
      const ref = externalRef(embed);
      expect(ref.length).toBe(EMBED_BYTES);
      const ofd = fs.openSync(path.join(path.dirname(out), ref.location), 'r');
      try {
        for (const [off, v] of markers) {
          const b = Buffer.alloc(4);
          fs.readSync(ofd, b, 0, 4, ref.offset + off);
          expect({ off, value: b.readFloatLE(0) }).toEqual({ off, value: v });
        }
        const zero = Buffer.alloc(4);
        fs.readSync(ofd, zero, 0, 4, ref.offset + 2 ** 31); // between markers: the sparse zeros, copied
        expect(zero.readFloatLE(0)).toBe(0);
      } finally {
        fs.closeSync(ofd);
      }
      expect(fs.readdirSync(path.dirname(out)).sort()).toEqual(['model.onnx', 'model.onnx.report.json', 'model.onnx_data']);

      // SIGTERM inside the copy of the large tensor: the write stops at the next chunk, the
      // staged 1+ GiB are removed and the previous set stays as it was.
      const outDir = path.dirname(out);
      const modelBefore = fs.readFileSync(out);
      const sideBefore = fs.statSync(path.join(outDir, 'model.onnx_data'));
      const cancel = new CancelToken();
      let stagedAtCancel = 0;
      const poll = setInterval(() => {
        for (const n of fs.readdirSync(outDir).filter((d) => d.includes('.w4a8-staging-'))) {
          const side = path.join(outDir, n, 'model.onnx_data');
          const size = fs.existsSync(side) ? fs.statSync(side).size : 0;
          if (size > 2 ** 30 && !cancel.isCancelled) {
            stagedAtCancel = size;
            cancel.cancel('SIGTERM');
          }
        }
      }, 20);
      let error: unknown;
      try {
        await quantizeModel({ input: path.join(inDir, 'model.onnx'), output: out, method: 'rtn', wformat: 'int4', groupSize: 32, format: 'matmulnbits', cancel });
      } catch (err) {
        error = err;
      } finally {
        clearInterval(poll);
      }
      expect(error).toBeInstanceOf(CancelledError);
      expect((error as CancelledError).exitCode).toBe(143);
      expect(stagedAtCancel).toBeGreaterThan(2 ** 30);
      expect(stagedAtCancel).toBeLessThan(EMBED_BYTES);
      expect(fs.readdirSync(outDir).sort()).toEqual(['model.onnx', 'model.onnx.report.json', 'model.onnx_data']);
      expect(fs.readFileSync(out).equals(modelBefore)).toBe(true);
      expect(fs.statSync(path.join(outDir, 'model.onnx_data')).ino).toBe(sideBefore.ino);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  // A MatMul weight over 2 GiB ([2048, 262200] fp32, 2.15 GB) is quantized, not only copied: RTN
  // reads it in slices of output channels with positioned reads (lib/quant/streamed_layer.ts), so
  // the process never holds the float tensor. The weight is sparse except for marker blocks of
  // random values at known rows and channels: the first, one straddling two slices, one at the
  // last channels, and one whose last row lies past 2 GiB in the file. Each block's codes, scales
  // and zero points in the output must be what the quantizer gives for that block alone.
  const K = 2048;
  const N = 262_200;
  const WEIGHT_BYTES = K * N * 4; // 2,147,942,400 > 2^31
  const quantEnough = free >= 600 * 2 ** 20; // the input is sparse; the output (int4 + scales) is about 350 MB
  if (!quantEnough) console.log(`SKIP: large_tensor: ${tmp} has ${free} bytes free, quantizing the 2.15 GB weight needs 600 MiB for its output`);
  (quantEnough ? it : it.skip)('a MatMul weight of 2.15 GB (2048 x 262200 fp32) is quantized with RTN in slices, in bounded memory', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'w4a8-large-q-'));
    try {
      const inDir = path.join(dir, 'in');
      fs.mkdirSync(inDir);
      const GROUP = 32;
      const seed = 31;
      console.log(`large_tensor: marker values seed ${seed}`);
      // [first row, first channel, channels]; rows are one group of 32.
      const blocks: [number, number, number][] = [
        [0, 0, 3],
        [1024, 8190, 5], // slices are 8192 channels of K = 2048 fp32 (64 MiB): this block spans two
        [64, N - 3, 3],
        [K - GROUP, 200_000, 4], // its last row is past 2^31 bytes
      ];
      expect(((K - 1) * N + 200_000) * 4).toBeGreaterThan(2 ** 31);
      const values = blocks.map(([, , cols], i) => randomFloats(GROUP * cols, seed + i, 0.8));
      const fd = fs.openSync(path.join(inDir, 'model.onnx_data'), 'w');
      fs.ftruncateSync(fd, WEIGHT_BYTES);
      blocks.forEach(([row0, col0, cols], i) => {
        for (let r = 0; r < GROUP; r++) {
          const row = Buffer.from(values[i].buffer, r * cols * 4, cols * 4);
          fs.writeSync(fd, row, 0, row.length, ((row0 + r) * N + col0) * 4);
        }
      });
      fs.closeSync(fd);
      const model = makeModel(
        {
          name: 'large_weight',
          nodes: [
            makeNode('Gather', ['embed', 'input_ids'], ['emb'], {}, { name: 'embed/Gather' }),
            makeNode('MatMul', ['emb', 'big.weight'], ['y'], {}, { name: 'big/MatMul' }),
            makeNode('Relu', ['y'], ['logits']),
          ],
          inputs: [makeValueInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
          outputs: [makeValueInfo('logits', DataType.FLOAT, ['batch', 'seq', N])],
          initializers: [
            makeFloatTensorLike('embed', DataType.FLOAT, [512, K], randomFloats(512 * K, 13, 0.3)),
            makeExternalTensor('big.weight', DataType.FLOAT, [K, N], 'model.onnx_data', 0, WEIGHT_BYTES),
          ],
        },
        [{ domain: '', version: 17 }],
        { dir: inDir },
      );
      fs.writeFileSync(path.join(inDir, 'model.onnx'), modelBytes(model));
      const out = path.join(dir, 'out', 'model.onnx');

      // Peak resident memory of the quantization: Linux resets the high-water mark on request.
      const peak = peakRss();
      const rssBefore = process.memoryUsage().rss;
      peak.reset();
      const started = Date.now();
      const summary = await quantizeModel({ input: path.join(inDir, 'model.onnx'), output: out, method: 'rtn', wformat: 'int4', groupSize: GROUP, format: 'matmulnbits', keepLogits: false });
      const peakAfter = peak.read();
      const seconds = (Date.now() - started) / 1000;
      expect(summary.layers.map((l) => [l.name, l.slices])).toEqual([['big/MatMul', Math.ceil(N / 8192)]]);
      const growth = peakAfter === undefined ? undefined : peakAfter - rssBefore;
      console.log(`large_tensor: quantized a ${WEIGHT_BYTES}-byte weight in ${summary.layers[0].slices} slices in ${seconds.toFixed(1)} s; ` +
        `resident memory before ${(rssBefore / 2 ** 20).toFixed(0)} MiB, peak ${peakAfter === undefined ? 'unknown (no VmHWM)' : `${(peakAfter / 2 ** 20).toFixed(0)} MiB (+${(growth! / 2 ** 20).toFixed(0)} MiB)`}`);
      // The codes, scales and zero points (about 1/6 of the float size) are held, the float weight never.
      if (growth !== undefined) expect(growth).toBeLessThan(1.25 * 2 ** 30);

      const written = loadModel(out);
      const node = written.proto.graph!.node.find((n) => n.opType === 'MatMulNBits')!;
      expect(node.input.slice(0, 4)).toEqual(['emb', 'big.weight_Q4', 'big.weight_scales', 'big.weight_zero_points']);
      const byName = new Map(written.proto.graph!.initializer.map((t) => [t.name, t]));
      const perRow = K / GROUP; // blocks per output channel
      const reader = (name: string) => {
        const ref = externalRef(byName.get(name)!);
        const rfd = fs.openSync(path.join(path.dirname(out), ref.location), 'r');
        return {
          read: (at: number, count: number) => {
            const b = Buffer.alloc(count);
            fs.readSync(rfd, b, 0, count, ref.offset + at);
            return b;
          },
          close: () => fs.closeSync(rfd),
        };
      };
      const codes = reader('big.weight_Q4');
      const scales = reader('big.weight_scales');
      const zeros = reader('big.weight_zero_points');
      try {
        for (const [i, [row0, col0, cols]] of blocks.entries()) {
          // The quantizer on this block alone: [32][cols], one group per channel.
          const ref = await quantizeWeight(values[i], GROUP, cols, { format: 'int4', groupSize: GROUP });
          const b = row0 / GROUP;
          for (let c = 0; c < cols; c++) {
            const n = col0 + c;
            const where = { block: i, channel: n, group: b };
            expect({ ...where, codes: [...codes.read((n * perRow + b) * (GROUP / 2), GROUP / 2)] }).toEqual({ ...where, codes: [...ref.codes.subarray(c * (GROUP / 2), (c + 1) * (GROUP / 2))] });
            expect({ ...where, scale: scales.read((n * perRow + b) * 4, 4).readFloatLE(0) }).toEqual({ ...where, scale: ref.scales[c] });
            const zp = zeros.read(n * (perRow / 2) + (b >> 1), 1)[0];
            expect({ ...where, zero: b % 2 === 0 ? zp & 15 : zp >> 4 }).toEqual({ ...where, zero: ref.zeroPoints![c] & 15 });
          }
        }
        // Between the markers: all-zero groups get scale 0 (and dequantize to exact zeros).
        expect(scales.read((100_000 * perRow + 7) * 4, 4).readFloatLE(0)).toBe(0);
      } finally {
        codes.close();
        scales.close();
        zeros.close();
      }
      const side = fs.statSync(path.join(path.dirname(out), 'model.onnx_data')).size;
      expect(side).toBeGreaterThan((K * N) / 2);
      expect(side).toBeLessThan(WEIGHT_BYTES / 4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});

/** The process's peak resident memory (VmHWM), reset by writing 5 to /proc/self/clear_refs; undefined where Linux offers neither. */
function peakRss(): { reset: () => void; read: () => number | undefined } {
  let resettable = true;
  return {
    reset: () => {
      try {
        fs.writeFileSync('/proc/self/clear_refs', '5');
      } catch {
        resettable = false;
      }
    },
    read: () => {
      if (!resettable) return undefined;
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
        return m ? Number(m[1]) * 1024 : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
