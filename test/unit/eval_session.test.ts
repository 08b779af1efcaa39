import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { W4A8Error } from '../../lib/util/errors';
import { openDecoder } from '../../lib/ort/session';
import { native } from '../../lib/native/binding';
import { loadModel, saveModel, serializeForOrt } from '../../lib/onnx/model';
import { toyDecoder, ToyDecoderSpec } from '../helpers/eval_fixtures';
import { SHARED_DIR } from '../helpers/shared_paths';

const PAST_ONNX = path.join(SHARED_DIR, 'models', 'tiny-random-gpt2-fp32', 'past.onnx');

function logitsAsFloat32(l: { data: Float32Array | Uint16Array; dtype: string }): Float32Array {
  if (l.dtype === 'float32') return l.data as Float32Array;
  const out = new Float32Array(l.data.length);
  native().float16ToFloat32(l.data as Uint16Array, out);
  return out;
}

describe('openDecoder', () => {
  const base: ToyDecoderSpec = { vocab: 11, maxPositions: 16, logits: 'float32', ids: 'int64', past: 'optimum', seed: 5 };
  it.each([
    ['fp32 logits, int64 ids, Optimum past', base],
    ['fp16 logits, int32 ids, GenAI past', { ...base, logits: 'float16', ids: 'int32', past: 'genai', seed: 9 } as ToyDecoderSpec],
    ['no past inputs', { ...base, past: 'none', seed: 13 } as ToyDecoderSpec],
    ['cache_position input', { ...base, cachePosition: true, seed: 17 } as ToyDecoderSpec],
  ])('feeds ids, a mask of ones, positions 0..n-1 and empty past (%s)', async (_name, spec) => {
    const toy = toyDecoder(spec);
    const session = await openDecoder(toy.bytes, { label: 'toy' });
    try {
      expect(session.vocab).toBe(spec.vocab);
      expect(session.logitsDtype).toBe(spec.logits);
      const ids = [1, 4, 10, 0, 7, 7];
      const logits = await session.logits(ids);
      expect(logits.seq).toBe(ids.length);
      expect(logits.vocab).toBe(spec.vocab);
      expect(logits.dtype).toBe(spec.logits);
      expect(Array.from(logitsAsFloat32(logits))).toEqual(Array.from(toy.expectedLogits(ids)));
    } finally {
      await session.release();
    }
  });

  // Missing shared data is a reported skip (jest lists it as skipped), never a pass.
  const havePast = fs.existsSync(PAST_ONNX);
  if (!havePast) console.warn(`skipped: ${PAST_ONNX} is absent`);
  (havePast ? it : it.skip)('runs the GenAI tiny-random-gpt2 export (past_N [2, batch, heads, past, head_dim], int32 ids) causally', async () => {
    const session = await openDecoder(PAST_ONNX);
    try {
      expect(session.vocab).toBe(1000);
      const ids = [5, 99, 400, 7, 321, 999, 0];
      const full = await session.logits(ids);
      const prefix = await session.logits(ids.slice(0, 3));
      expect(full.seq).toBe(7);
      expect(prefix.seq).toBe(3);
      // A causal decoder: the logits of a prefix are the first rows of the longer run.
      const a = full.data.subarray(0, 3 * 1000);
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - prefix.data[i]));
      expect(maxDiff).toBeLessThan(1e-4);
      // ... and a later token changes later rows.
      const other = await session.logits([5, 99, 400, 8, 321, 999, 0]);
      expect(other.data[4 * 1000]).not.toBe(full.data[4 * 1000]);
      await expect(session.logits([1000])).rejects.toThrow(/outside the model's vocabulary/);
    } finally {
      await session.release();
    }
  });

  it('fails with one-line W4A8Errors on missing, non-ONNX and non-decoder models', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-eval-session-'));
    try {
      await expect(openDecoder(path.join(dir, 'absent.onnx'))).rejects.toThrow(/model file not found/);
      const junk = path.join(dir, 'junk.onnx');
      fs.writeFileSync(junk, 'this is not a protobuf at all\n');
      await expect(openDecoder(junk)).rejects.toThrow(W4A8Error);
      await expect(openDecoder(junk)).rejects.toThrow(/junk\.onnx is not an ONNX model \(protobuf parse failed/);
      await expect(openDecoder(dir)).rejects.toThrow(/is a directory/);
      const noIds = toyDecoder({ ...{ vocab: 5, maxPositions: 4, logits: 'float32', ids: 'int64', past: 'none', seed: 1 }, breakIt: 'no-input-ids' });
      await expect(openDecoder(noIds.bytes, { label: 'no-ids' })).rejects.toThrow(/input "tokens" is not one a decoder session can feed/);
      const noLogits = toyDecoder({ vocab: 5, maxPositions: 4, logits: 'float32', ids: 'int64', past: 'none', seed: 1, breakIt: 'no-logits' });
      await expect(openDecoder(noLogits.bytes, { label: 'no-logits' })).rejects.toThrow(/no-logits has no "logits" output/);
      const symbolicHeads = toyDecoder({ vocab: 5, maxPositions: 4, logits: 'float32', ids: 'int64', past: 'symbolic-heads', seed: 1 });
      await expect(openDecoder(symbolicHeads.bytes, { label: 'heads' })).rejects.toThrow(
        /past input "past_key_values.0.key" has shape \[batch_size, num_heads, past_sequence_length, 4\]; expected exactly one symbolic past-length/,
      );
      await expect(openDecoder(42 as unknown as string)).rejects.toThrow(TypeError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads a model with external data by path, and as bytes with its external data', async () => {
    const toy = toyDecoder({ vocab: 40, maxPositions: 16, logits: 'float32', ids: 'int64', past: 'optimum', seed: 31 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-eval-external-'));
    try {
      const file = path.join(dir, 'model.onnx');
      // Shape constants must stay inline (ORT shape inference cannot read external data); weights go out.
      saveModel(toy.model, file, { externalData: 'always', inlineThresholdBytes: 64 });
      expect(fs.readdirSync(dir).length).toBeGreaterThan(1);
      const ids = [3, 1, 4, 1, 5, 9, 2, 6];
      const byPath = await openDecoder(file);
      try {
        expect(Array.from((await byPath.logits(ids)).data)).toEqual(Array.from(toy.expectedLogits(ids)));
      } finally {
        await byPath.release();
      }
      const { bytes, externalData } = serializeForOrt(loadModel(file));
      expect(externalData).toBeDefined();
      const byBytes = await openDecoder(bytes, { externalData, label: 'external toy' });
      try {
        expect(Array.from((await byBytes.logits(ids)).data)).toEqual(Array.from(toy.expectedLogits(ids)));
      } finally {
        await byBytes.release();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects an empty id list', async () => {
    const toy = toyDecoder({ vocab: 5, maxPositions: 4, logits: 'float32', ids: 'int64', past: 'none', seed: 2 });
    const session = await openDecoder(toy.bytes);
    try {
      await expect(session.logits([])).rejects.toThrow(RangeError);
    } finally {
      await session.release();
    }
  });
});
