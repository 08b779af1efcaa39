// Picking the next token: greedy (temperature 0, the default) or sampled with temperature, top-k
// and top-p from a seeded generator. The generator and its coin are llama2.c's (xorshift64*, the
// top 24 bits of a 32-bit draw over 2^24), and the native sampler is llama2.c's, so with top-k off
// the same seed, temperature and top-p choose the tokens llama2.c's `run -s <seed>` chooses.
import { randomInt } from 'node:crypto';
import { argmaxRow, sampleRow, checkSamplingParams, type Logits } from '../native/eval_ops';
import { expectInt } from '../native/validate';

export interface SamplingOptions {
  /** Softmax temperature (default 0: greedy, no randomness). */
  temperature?: number;
  /** Sample among the k most likely tokens only (default 0: all). */
  topK?: number;
  /** Nucleus sampling: among the most likely tokens whose mass first exceeds topP (default 0.9, llama2.c's; 1 turns it off). */
  topP?: number;
  /** Seed of the generator, a positive integer (default: a random one, reported in the settings). */
  seed?: number;
}

/** What a generation used, enough to repeat it: the seed is set only when sampling. */
export interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
}

const MASK64 = (1n << 64n) - 1n;
const XORSHIFT_STAR = 0x2545f4914f6cdd1dn;

/** llama2.c's random_u32 / random_f32: xorshift64* and a float coin in [0, 1) of 24 bits. */
export class CoinGenerator {
  private state: bigint;

  constructor(seed: number) {
    expectInt('seed', seed, 1);
    this.state = BigInt(seed);
  }

  nextU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s = (s ^ (s << 25n)) & MASK64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * XORSHIFT_STAR) & MASK64) >> 32n);
  }

  /** (u32 >> 8) / 2^24: exact in float32, as llama2.c computes it. */
  nextCoin(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
}

export interface TokenSampler {
  readonly settings: SamplingSettings;
  /** The next token from `row` of the logits; -1 when the row has no distribution (NaN). */
  pick(logits: Logits, row: number): number;
}

/** Validates the options and returns a sampler (greedy when the temperature is 0). */
export function createSampler(opts: SamplingOptions = {}): TokenSampler {
  const { temperature, topK, topP } = checkSamplingParams({
    temperature: opts.temperature ?? 0,
    topK: opts.topK ?? 0,
    topP: opts.topP ?? 0.9,
  });
  if (temperature === 0) {
    // Greedy: top-k, top-p and the seed change nothing, so they are not reported.
    return { settings: { temperature: 0, topK: 0, topP: 1 }, pick: (logits, row) => argmaxRow(logits, row) };
  }
  const seed = opts.seed ?? randomInt(1, 2 ** 32);
  const coins = new CoinGenerator(seed);
  const params = { temperature, topK, topP };
  return { settings: { ...params, seed }, pick: (logits, row) => sampleRow(logits, row, params, coins.nextCoin()) };
}
