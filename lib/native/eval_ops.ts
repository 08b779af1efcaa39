// Validated wrappers over the native eval ops: NLL of target tokens under log-softmax of
// logits rows (perplexity) and the argmax of one row (greedy decoding).
import { native } from './binding';

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

function checkCount(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`Expected an integer for ${name} but received ${String(value)}`);
  }
  if (value < min) throw new RangeError(`Expected ${name} >= ${min} but received ${value}`);
  return value;
}

function checkLogits(logits: Logits): 0 | 1 {
  if (logits === null || typeof logits !== 'object') throw new TypeError('Expected a logits object {data, dtype, seq, vocab}');
  const seq = checkCount('logits.seq', logits.seq, 1);
  const vocab = checkCount('logits.vocab', logits.vocab, 1);
  let code: 0 | 1;
  if (logits.dtype === 'float32') {
    if (!(logits.data instanceof Float32Array)) throw new TypeError('float32 logits must be a Float32Array');
    code = 0;
  } else if (logits.dtype === 'float16') {
    if (!(logits.data instanceof Uint16Array)) throw new TypeError('float16 logits must be a Uint16Array of fp16 bits');
    code = 1;
  } else {
    throw new TypeError(`Expected logits.dtype 'float32' or 'float16' but received ${String(logits.dtype)}`);
  }
  if (logits.data.length !== seq * vocab) {
    throw new RangeError(`logits hold ${logits.data.length} values, not seq * vocab = ${seq} * ${vocab}; pass the matching shape`);
  }
  return code;
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
  if (!(targets instanceof Int32Array)) throw new TypeError('Expected targets to be an Int32Array of token ids');
  if (targets.length > logits.seq) {
    throw new RangeError(`targets hold ${targets.length} ids but logits have only ${logits.seq} rows`);
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
      ? await b.tokenNllAsync(logits.data, code, targets.length, logits.vocab, targets, perToken)
      : b.tokenNll(logits.data, code, targets.length, logits.vocab, targets, perToken);
  return { total, perToken };
}

/** Index of the largest logit of `row` (ties: lowest index; NaN ignored; -1 if the row is all NaN). */
export function argmaxRow(logits: Logits, row: number): number {
  const code = checkLogits(logits);
  checkCount('row', row, 0);
  if (row >= logits.seq) throw new RangeError(`row ${row} is past the last of ${logits.seq} logits rows`);
  return native().rowArgmax(logits.data, code, row, logits.vocab);
}
