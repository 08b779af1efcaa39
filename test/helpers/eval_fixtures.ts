// Fixtures for the eval tests: a toy "decoder" ONNX model whose logits are known in closed form
// (logits[t] = (table[id_t] + posTable[t]) * mask_t, optionally narrowed to fp16), and a
// character-level tokenizer with llama2.c-style ids (<unk>=0, BOS=1, EOS=2).
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { modelBytes, type OnnxModel } from '../../lib/onnx/model';
import { makeFloatTensorLike, makeTensor } from '../../lib/onnx/tensor';
import { native } from '../../lib/native/binding';
import type { Tokenizer } from '../../lib/tokenize/tokenizer';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ToyDecoderSpec {
  vocab: number;
  maxPositions: number;
  logits: 'float32' | 'float16';
  ids: 'int64' | 'int32';
  /** Past inputs to declare (unused by the graph, as the session must still feed them). */
  past: 'optimum' | 'genai' | 'none' | 'symbolic-heads';
  seed: number;
  /** Declare an (unused) cache_position input, as newer Optimum exports have. */
  cachePosition?: boolean;
  /** Drop input_ids or rename the logits output, for error tests. */
  breakIt?: 'no-input-ids' | 'no-logits';
}

export interface ToyDecoder {
  model: OnnxModel;
  bytes: Uint8Array;
  vocab: number;
  /** The logits the model computes for `ids` (fp16-rounded when the model outputs fp16). */
  expectedLogits(ids: number[]): Float32Array;
}

export function toyDecoder(spec: ToyDecoderSpec): ToyDecoder {
  const next = rng(spec.seed);
  const V = spec.vocab;
  const table = Float32Array.from({ length: V * V }, () => (next() * 2 - 1) * 3);
  const posTable = Float32Array.from({ length: spec.maxPositions * V }, () => (next() * 2 - 1) * 0.5);
  const idType = spec.ids === 'int64' ? DataType.INT64 : DataType.INT32;
  const inputs = [
    makeValueInfo(spec.breakIt === 'no-input-ids' ? 'tokens' : 'input_ids', idType, ['batch_size', 'sequence_length']),
    makeValueInfo('attention_mask', idType, ['batch_size', 'total_sequence_length']),
    makeValueInfo('position_ids', idType, ['batch_size', 'sequence_length']),
  ];
  if (spec.cachePosition) inputs.push(makeValueInfo('cache_position', DataType.INT64, ['sequence_length']));
  const pastType = spec.logits === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
  if (spec.past === 'optimum') {
    for (const kv of ['key', 'value']) inputs.push(makeValueInfo(`past_key_values.0.${kv}`, pastType, ['batch_size', 2, 'past_sequence_length', 4]));
  } else if (spec.past === 'symbolic-heads') {
    inputs.push(makeValueInfo('past_key_values.0.key', pastType, ['batch_size', 'num_heads', 'past_sequence_length', 4]));
  } else if (spec.past === 'genai') {
    inputs.push(makeValueInfo('past_0', pastType, [2, 'batch_size', 2, 'past_seq_len', 4]));
  }
  const logitsName = spec.breakIt === 'no-logits' ? 'hidden' : 'logits';
  const fp16 = spec.logits === 'float16';
  const nodes = [
    makeNode('Gather', ['table', inputs[0].name], ['tok'], { axis: 0 }),
    makeNode('Gather', ['pos_table', 'position_ids'], ['pos'], { axis: 0 }),
    makeNode('Add', ['tok', 'pos'], ['sum']),
    makeNode('Cast', ['attention_mask'], ['mask_f'], { to: DataType.FLOAT }),
    makeNode('Unsqueeze', ['mask_f', 'last_axis'], ['mask_3d']),
    makeNode('Mul', ['sum', 'mask_3d'], [fp16 ? 'masked' : logitsName]),
    ...(fp16 ? [makeNode('Cast', ['masked'], [logitsName], { to: DataType.FLOAT16 })] : []),
  ];
  const model = makeModel(
    {
      name: 'toy_decoder',
      nodes,
      inputs,
      outputs: [makeValueInfo(logitsName, fp16 ? DataType.FLOAT16 : DataType.FLOAT, ['batch_size', 'sequence_length', V])],
      initializers: [
        makeFloatTensorLike('table', DataType.FLOAT, [V, V], table),
        makeFloatTensorLike('pos_table', DataType.FLOAT, [spec.maxPositions, V], posTable),
        makeTensor('last_axis', DataType.INT64, [1], BigInt64Array.from([-1n])),
      ],
    },
    [{ domain: '', version: 21 }],
  );
  return {
    model,
    bytes: modelBytes(model),
    vocab: V,
    expectedLogits(ids: number[]): Float32Array {
      const out = new Float32Array(ids.length * V);
      for (let t = 0; t < ids.length; t++) {
        for (let v = 0; v < V; v++) out[t * V + v] = Math.fround(table[ids[t] * V + v] + posTable[t * V + v]);
      }
      if (!fp16) return out;
      const half = new Uint16Array(out.length);
      native().float32ToFloat16(out, half);
      native().float16ToFloat32(half, out);
      return out;
    },
  };
}

/** Characters of the toy alphabet; id = 3 + index. */
export const TOY_ALPHABET = 'abcdefghijklmnopqrstuvwxyz .,\n';

/** A character tokenizer: encode(doc, {bos}) = [1?, ...chars]; unknown characters map to 0. */
export function toyTokenizer(): Tokenizer {
  const vocabSize = 3 + TOY_ALPHABET.length;
  return {
    vocabSize,
    bosId: 1,
    eosId: 2,
    encode(text: string, opts: { bos?: boolean } = {}): number[] {
      const ids = Array.from(text, (c) => {
        const i = TOY_ALPHABET.indexOf(c);
        return i < 0 ? 0 : 3 + i;
      });
      return opts.bos ? [1, ...ids] : ids;
    },
    decode(ids: number[]): string {
      return ids.filter((id) => id >= 3).map((id) => TOY_ALPHABET[id - 3]).join('');
    },
    decodeToken(id: number): string {
      return id >= 3 ? TOY_ALPHABET[id - 3] : '';
    },
  };
}
