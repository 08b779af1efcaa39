// Validated wrappers over the native eval ops: NLL of target tokens under log-softmax of
// logits rows (perplexity), the argmax of one row (greedy decoding) and a token sampled from one row.
import { native } from './binding';
import { callNative } from './status';
import { expectInt, expectNumber, expectObject, expectOneOf, expectTypedArray } from './validate';

export type LogitsDtype = 'float32' | 'float16';

/** Row-major [seq, vocab] logits of one sequence; fp16 logits stay as their bit patterns. */
export interface Logits {
  data: Float32Array | Uint16Array;
  dtype: LogitsDtype;
  seq: number;
  vocab: number;
}

// Below this many logits the NLL runs inline; above it, on the libuv pool (> ~1 ms of work).
const ASYNC_THRESHOLD = 1 << 18;

const LOGITS_DTYPES: readonly LogitsDtype[] = ['float32', 'float16'];

function checkLogits(logits: Logits): 0 | 1 {
  expectObject('logits', logits, '{ data, dtype, seq, vocab }');
  const seq = expectInt('logits.seq', logits.seq, 1);
  const vocab = expectInt('logits.vocab', logits.vocab, 1);
  const dtype = expectOneOf('logits.dtype', logits.dtype, LOGITS_DTYPES);
  // fp16 logits stay as their bit patterns: the addon widens them while it reads.
  expectTypedArray('logits.data', logits.data, dtype === 'float32' ? 'Float32Array' : 'Uint16Array', seq * vocab, `seq=${seq} x vocab=${vocab}`);
  return dtype === 'float32' ? 0 : 1;
}

export interface TokenNll {
  /** Sum of the per-token NLLs (natural log), accumulated in double. */
  total: number;
  /** NLL of targets[r] under row r, for r < targets.length. */
  perToken: Float64Array;
}

/**
 * NLL of `targets[r]` under the softmax of logits row r, for the first `targets.length` rows.
 * Non-finite logits give NaN/Infinity; the caller decides what that means.
 */
export async function tokenNll(logits: Logits, targets: Int32Array): Promise<TokenNll> {
  const code = checkLogits(logits);
  expectTypedArray('targets', targets, 'Int32Array');
  if (targets.length > logits.seq) {
    throw new RangeError(`Expected at most logits.seq=${logits.seq} targets but received ${targets.length}; pass one target per logits row`);
  }
  // Token ids, not tensor elements: at most one window's worth, checked here for a clear message.
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i];
    if (t < 0 || t >= logits.vocab) {
      throw new RangeError(`target id ${t} at position ${i} is outside the vocabulary [0, ${logits.vocab}); the tokenizer does not fit this model`);
    }
  }
  const perToken = new Float64Array(targets.length);
  const b = native();
  const total =
    targets.length * logits.vocab >= ASYNC_THRESHOLD
      ? await callNative('tokenNll', () => b.tokenNllAsync(logits.data, code, targets.length, logits.vocab, targets, perToken))
      : b.tokenNll(logits.data, code, targets.length, logits.vocab, targets, perToken);
  return { total, perToken };
}

/** Index of the largest logit of `row` (ties: lowest index; NaN ignored; -1 if the row is all NaN). */
export function argmaxRow(logits: Logits, row: number): number {
  const code = checkLogits(logits);
  expectInt('row', row, 0, logits.seq - 1);
  return native().rowArgmax(logits.data, code, row, logits.vocab);
}

export interface SamplingParams {
  /** Softmax temperature, >= 0; 0 is greedy (the argmax). */
  temperature: number;
  /** Keep only the k most likely tokens (renormalized); 0 keeps all. */
  topK: number;
  /** Nucleus sampling: the most likely tokens whose mass first exceeds topP; 0 or 1 is off. */
  topP: number;
}

/** Checks sampling parameters (the CLI and generate validate through this too). */
export function checkSamplingParams(p: SamplingParams): SamplingParams {
  expectObject('sampling', p, '{ temperature, topK, topP }');
  return {
    temperature: expectNumber('temperature', p.temperature, { min: 0 }),
    topK: expectInt('topK', p.topK, 0, 0x7fffffff),
    topP: expectNumber('topP', p.topP, { min: 0, max: 1 }),
  };
}

/**
 * A token drawn from softmax(row / temperature) restricted to the top k and then the nucleus, by
 * inverting its cumulative distribution at `coin` in [0, 1) (llama2.c's sampler when topK is 0).
 * -1 when the row holds NaN or is all -Infinity.
 */
export function sampleRow(logits: Logits, row: number, params: SamplingParams, coin: number): number {
  const code = checkLogits(logits);
  expectInt('row', row, 0, logits.seq - 1);
  const p = checkSamplingParams(params);
  expectNumber('coin', coin, { min: 0, max: 1, maxExclusive: true });
  return native().rowSample(logits.data, code, row, logits.vocab, p.temperature, p.topK, p.topP, coin);
}
