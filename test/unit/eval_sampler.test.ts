// The sampler's pieces: llama2.c's generator (known answers from its random_u32), option checks,
// greedy at temperature 0, and the native row sampler's refusals. Its distribution is checked in
// native/tests/test_sample_token.cpp; its agreement with llama2.c in the stories260K integration test.
import { CoinGenerator, createSampler } from '../../lib/eval/sampler';
import { argmaxRow, sampleRow, type Logits } from '../../lib/native/eval_ops';

function row(values: number[]): Logits {
  return { data: Float32Array.from(values), dtype: 'float32', seq: 1, vocab: values.length };
}

describe('CoinGenerator (llama2.c xorshift64*)', () => {
  it("gives llama2.c's random_u32 sequence", () => {
    // Printed by llama2.c's random_u32 (run.c) compiled with gcc, from states 42 and 2^53 - 1.
    const g = new CoinGenerator(42);
    expect([1, 2, 3, 4, 5].map(() => g.nextU32())).toEqual([1456360119, 3359763283, 3393612768, 4054632243, 3283045847]);
    const big = new CoinGenerator(Number.MAX_SAFE_INTEGER);
    expect([1, 2, 3].map(() => big.nextU32())).toEqual([2449417625, 2737799240, 551794973]);
  });

  it('coins are the top 24 bits over 2^24, in [0, 1)', () => {
    const a = new CoinGenerator(42);
    const b = new CoinGenerator(42);
    for (let i = 0; i < 1000; i++) {
      const u = a.nextU32();
      const c = b.nextCoin();
      expect(c).toBe((u >>> 8) / 16777216);
      expect(c >= 0 && c < 1).toBe(true);
    }
  });

  it('refuses seeds that are not positive integers (state 0 would give only zeros)', () => {
    expect(() => new CoinGenerator(0)).toThrow(RangeError);
    expect(() => new CoinGenerator(1.5)).toThrow(TypeError);
  });
});

describe('createSampler', () => {
  const seed = 12345;
  console.log(`eval_sampler: logits seed ${seed}`);
  let state = seed;
  const rand = (): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const logits = row(Array.from({ length: 97 }, () => rand() * 8 - 4));

  it('is greedy at temperature 0 (the default), reporting no seed', () => {
    const s = createSampler();
    expect(s.settings).toEqual({ temperature: 0, topK: 0, topP: 1 });
    expect(s.pick(logits, 0)).toBe(argmaxRow(logits, 0));
  });

  it('repeats its draws for a seed and reports the seed; top-k 1 is the argmax', () => {
    const a = createSampler({ temperature: 1, seed: 7 });
    const b = createSampler({ temperature: 1, seed: 7 });
    const drawsA = Array.from({ length: 50 }, () => a.pick(logits, 0));
    expect(Array.from({ length: 50 }, () => b.pick(logits, 0))).toEqual(drawsA);
    expect(new Set(drawsA).size).toBeGreaterThan(1);
    expect(a.settings).toEqual({ temperature: 1, topK: 0, topP: 0.9, seed: 7 });
    const top1 = createSampler({ temperature: 2, topK: 1, topP: 1, seed: 3 });
    for (let i = 0; i < 20; i++) expect(top1.pick(logits, 0)).toBe(argmaxRow(logits, 0));
    expect(createSampler({ temperature: 1 }).settings.seed).toBeGreaterThanOrEqual(1);
  });

  it('refuses bad options with clear errors', () => {
    expect(() => createSampler({ temperature: -1 })).toThrow(/Expected temperature in \[0, inf\) but received -1/);
    expect(() => createSampler({ temperature: Number.NaN })).toThrow(TypeError);
    expect(() => createSampler({ temperature: 1, topP: 1.5 })).toThrow(/Expected topP in \[0, 1\] but received 1.5/);
    expect(() => createSampler({ temperature: 1, topK: -2 })).toThrow(RangeError);
    expect(() => createSampler({ temperature: 1, seed: 0 })).toThrow(RangeError);
  });
});

describe('sampleRow', () => {
  it('follows an overwhelming logit, gives -1 for a NaN row and refuses a coin outside [0, 1)', () => {
    const peaked = row([0, 60, 0, -3]);
    for (const coin of [1e-6, 0.5, 0.999999]) expect(sampleRow(peaked, 0, { temperature: 1, topK: 0, topP: 1 }, coin)).toBe(1);
    expect(sampleRow(row([0, Number.NaN, 1]), 0, { temperature: 1, topK: 0, topP: 0.9 }, 0.5)).toBe(-1);
    expect(() => sampleRow(peaked, 0, { temperature: 1, topK: 0, topP: 1 }, 1)).toThrow(RangeError);
    // A coin just below 1 that rounds to 1 in float still picks the last token with mass.
    expect(sampleRow(row([0, 0, 0]), 0, { temperature: 1, topK: 0, topP: 1 }, 1 - 1e-12)).toBe(2);
    expect(() => sampleRow(peaked, 1, { temperature: 1, topK: 0, topP: 1 }, 0.5)).toThrow(RangeError);
  });

  it('inverts the cumulative distribution: a coin just below a token\'s upper edge picks it', () => {
    // Probabilities 0.25 / 0.25 / 0.5 (logits log-spaced): coins in [0, .25) -> 0, [.25, .5) -> 1, [.5, 1) -> 2.
    const r = row([0, 0, Math.log(2)]);
    const params = { temperature: 1, topK: 0, topP: 1 };
    expect([0.1, 0.24, 0.26, 0.49, 0.51, 0.99].map((c) => sampleRow(r, 0, params, c))).toEqual([0, 0, 1, 1, 2, 2]);
  });
});
