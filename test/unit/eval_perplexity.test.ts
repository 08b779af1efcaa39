import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledError, W4A8Error } from '../../lib/util/errors';
import { evaluatePerplexity } from '../../lib/eval/perplexity';
import { openDecoder, DecoderSession } from '../../lib/ort/session';
import { CancelToken } from '../../lib/util/cancel';
import type { Progress } from '../../lib/util/progress';
import { rng, TOY_ALPHABET, toyDecoder, ToyDecoder, toyTokenizer } from '../helpers/eval_fixtures';

// Written straight from the protocol: documents, BOS per document, windows of ctx, positions
// 1..len-1 scored, stop after maxTokens predictions; NLL in float64 from the known logits.
function referencePerplexity(toy: ToyDecoder, text: string, ctx: number, maxTokens: number): { ppl: number; tokens: number; windows: number } {
  const tok = toyTokenizer();
  const docs = text.replace(/\r\n/g, '\n').split(/\n\n+/).map((d) => d.trim()).filter((d) => d !== '');
  const stream = docs.flatMap((d) => tok.encode(d, { bos: true }));
  let nll = 0;
  let n = 0;
  let windows = 0;
  for (let start = 0; start < stream.length && n < maxTokens; start += ctx) {
    const win = stream.slice(start, start + ctx);
    if (win.length < 2) break;
    const logits = toy.expectedLogits(win);
    windows++;
    for (let t = 0; t + 1 < win.length && n < maxTokens; t++) {
      const row = Array.from(logits.subarray(t * toy.vocab, (t + 1) * toy.vocab));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      nll += lse - row[win[t + 1]];
      n++;
    }
  }
  return { ppl: Math.exp(nll / n), tokens: n, windows };
}

function randomText(seed: number, docs: number): string {
  const next = rng(seed);
  const letters = TOY_ALPHABET.replace('\n', '');
  const parts: string[] = [];
  for (let d = 0; d < docs; d++) {
    const len = 5 + Math.floor(next() * 60);
    parts.push(Array.from({ length: len }, () => letters[Math.floor(next() * letters.length)]).join(''));
  }
  return parts.join(next() < 0.5 ? '\r\n\r\n' : '\n\n\n');
}

describe('evaluatePerplexity', () => {
  let toy: ToyDecoder;
  let session: DecoderSession;
  beforeAll(async () => {
    toy = toyDecoder({ vocab: 3 + TOY_ALPHABET.length, maxPositions: 64, logits: 'float32', ids: 'int64', past: 'optimum', seed: 21 });
    session = await openDecoder(toy.bytes, { label: 'toy' });
  });
  afterAll(async () => {
    await session.release();
  });

  it.each([
    [64, 100000],
    [17, 100000],
    [17, 150],
    [2, 40],
  ])('matches a float64 reference of the protocol (ctx %i, max-tokens %i)', async (ctx, maxTokens) => {
    const text = randomText(ctx * 7 + maxTokens, 12);
    const ref = referencePerplexity(toy, text, ctx, maxTokens);
    const got = await evaluatePerplexity({ session, text, tokenizer: toyTokenizer(), ctx, maxTokens });
    expect(got.tokens).toBe(ref.tokens);
    expect(got.windows).toBe(ref.windows);
    expect(got.ctx).toBe(ctx);
    expect(Math.abs(got.ppl - ref.ppl) / ref.ppl).toBeLessThan(1e-9);
    expect(got.nll).toBeCloseTo(Math.log(ref.ppl), 9);
  });

  it('reads the text from a file, reports progress per window, and loads the model by path', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-eval-ppl-'));
    try {
      const modelPath = path.join(dir, 'model.onnx');
      fs.writeFileSync(modelPath, toy.bytes);
      const textPath = path.join(dir, 'text.txt');
      const text = randomText(3, 5);
      fs.writeFileSync(textPath, text);
      const updates: number[] = [];
      const progress: Progress = { start() {}, update: (done) => updates.push(done), stop() {}, log() {} };
      const got = await evaluatePerplexity({ modelPath, textPath, tokenizer: toyTokenizer(), ctx: 16, progress });
      const ref = referencePerplexity(toy, text, 16, 20000);
      expect(got.ppl).toBeCloseTo(ref.ppl, 9);
      expect(updates).toEqual(Array.from({ length: ref.windows }, (_, i) => i + 1));
      await expect(evaluatePerplexity({ modelPath, textPath: path.join(dir, 'absent.txt'), tokenizer: toyTokenizer() })).rejects.toThrow(/text file not found/);
      await expect(evaluatePerplexity({ modelPath, text: 'abc' })).rejects.toThrow(/no tokenizer found beside/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses empty text, a tokenizer that does not fit the model, and bad options', async () => {
    const tokenizer = toyTokenizer();
    await expect(evaluatePerplexity({ session, text: '\n\n  \r\n\r\n', tokenizer })).rejects.toThrow(/gives no tokens/);
    const small = toyDecoder({ vocab: 10, maxPositions: 64, logits: 'float32', ids: 'int64', past: 'none', seed: 4 });
    const smallSession = await openDecoder(small.bytes);
    try {
      const err = await evaluatePerplexity({ session: smallSession, text: 'hello world', tokenizer }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(W4A8Error);
      expect((err as Error).message).toMatch(/token id \d+ but the model's logits have 10 entries; the tokenizer does not fit/);
    } finally {
      await smallSession.release();
    }
    await expect(evaluatePerplexity({ session, text: 'abc', tokenizer, ctx: 1 })).rejects.toThrow(RangeError);
    await expect(evaluatePerplexity({ session, text: 'abc', tokenizer, maxTokens: 0 })).rejects.toThrow(RangeError);
    await expect(evaluatePerplexity({ session, tokenizer } as never)).rejects.toThrow(TypeError);
  });

  it('stops between windows when cancelled', async () => {
    const cancel = new CancelToken();
    const progress: Progress = { start() {}, update: (done) => (done === 2 ? cancel.cancel() : undefined), stop() {}, log() {} };
    const text = randomText(8, 10);
    await expect(evaluatePerplexity({ session, text, tokenizer: toyTokenizer(), ctx: 8, progress, cancel })).rejects.toThrow(CancelledError);
  });
});
