import { generateGreedy, StopReason } from '../../lib/eval/generate';
import { openDecoder } from '../../lib/ort/session';
import { TOY_ALPHABET, toyDecoder, ToyDecoder, toyTokenizer } from '../helpers/eval_fixtures';

// Greedy decoding written from its definition over the toy model's closed-form logits.
function referenceGreedy(toy: ToyDecoder, prompt: string, maxNew: number): { ids: number[]; stop: StopReason } {
  const ids = toyTokenizer().encode(prompt, { bos: true });
  for (let step = 0; step < maxNew; step++) {
    const logits = toy.expectedLogits(ids);
    const row = logits.subarray((ids.length - 1) * toy.vocab);
    let best = 0;
    for (let v = 1; v < toy.vocab; v++) if (row[v] > row[best]) best = v;
    if (best === 1) return { ids, stop: 'bos' };
    if (best === 2) return { ids, stop: 'eos' };
    ids.push(best);
  }
  return { ids, stop: 'max-new-tokens' };
}

describe('generateGreedy', () => {
  it('follows the argmax chain, streams each piece, and stops at BOS/EOS or max-new-tokens', async () => {
    const stops = new Set<StopReason>();
    for (let seed = 1; seed <= 12; seed++) {
      const toy = toyDecoder({ vocab: 3 + TOY_ALPHABET.length, maxPositions: 64, logits: seed % 2 ? 'float16' : 'float32', ids: 'int32', past: 'genai', seed });
      const session = await openDecoder(toy.bytes);
      try {
        const prompt = seed % 3 === 0 ? '' : 'once upon';
        const ref = referenceGreedy(toy, prompt, 40);
        const pieces: string[] = [];
        const got = await generateGreedy({ session, prompt, maxNewTokens: 40, tokenizer: toyTokenizer(), onText: (p) => pieces.push(p) });
        expect(got.ids).toEqual(ref.ids);
        expect(got.stop).toBe(ref.stop);
        const tok = toyTokenizer();
        expect(got.text).toBe(tok.decode(ref.ids));
        expect(got.completion).toBe(tok.decode(ref.ids.slice(got.promptTokens)));
        expect(pieces.join('')).toBe(got.text);
        expect(got.promptTokens).toBe(tok.encode(prompt, { bos: true }).length);
        expect(got.newTokens).toBe(ref.ids.length - got.promptTokens);
        stops.add(got.stop);
      } finally {
        await session.release();
      }
    }
    // The seeds cover both ways of ending.
    expect(stops.has('max-new-tokens')).toBe(true);
    expect(stops.has('bos') || stops.has('eos')).toBe(true);
  });

  it('validates its options and a prompt that does not fit the model', async () => {
    const toy = toyDecoder({ vocab: 8, maxPositions: 16, logits: 'float32', ids: 'int64', past: 'none', seed: 3 });
    const session = await openDecoder(toy.bytes);
    try {
      await expect(generateGreedy({ session, tokenizer: toyTokenizer(), maxNewTokens: -1 })).rejects.toThrow(RangeError);
      await expect(generateGreedy({ session, tokenizer: toyTokenizer(), maxNewTokens: 1.5 })).rejects.toThrow(RangeError);
      await expect(generateGreedy({ session, tokenizer: toyTokenizer(), prompt: 'zzz' })).rejects.toThrow(/the tokenizer does not fit this model/);
      const none = await generateGreedy({ session, tokenizer: toyTokenizer(), maxNewTokens: 0 });
      expect(none.ids).toEqual([1]);
      expect(none.stop).toBe('max-new-tokens');
    } finally {
      await session.release();
    }
  });
});
