// The llama2.c tokenizer against a straight port of run.c's O(n^2) `encode` (the oracle below),
// on the whole calibration text and on synthetic vocabularies with tied scores.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Llama2cTokenizer } from '../../lib/tokenize/llama2c';
import { W4A8Error } from '../../lib/util/errors';

const SHARED = path.resolve(__dirname, '../../../shared');
const TOK512 = path.join(SHARED, 'models/stories260K/tok512.bin');
const CALIB = path.join(SHARED, 'data/tinystories/calib.txt');
const haveData = fs.existsSync(TOK512) && fs.existsSync(CALIB);
if (!haveData) console.warn(`skipping tok512 tests: ${TOK512} or ${CALIB} is missing`);
const withData = haveData ? describe : describe.skip;

/** Write a tok*.bin image the way llama2.c's tokenizer.py does. */
function tokBin(pieces: (string | Uint8Array)[], scores: number[], maxLen?: number): Uint8Array {
  const bufs = pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p)));
  const head = Buffer.alloc(4);
  head.writeInt32LE(maxLen ?? Math.max(1, ...bufs.map((b) => b.length)));
  const parts: Buffer[] = [head];
  bufs.forEach((b, i) => {
    const entry = Buffer.alloc(8);
    entry.writeFloatLE(scores[i], 0);
    entry.writeInt32LE(b.length, 4);
    parts.push(entry, b);
  });
  return new Uint8Array(Buffer.concat(parts));
}

/** Independent reader + run.c `encode`, literally: rescan all pairs, take the first strictly best. */
class RunCOracle {
  readonly vocab: string[] = [];
  readonly scores: number[] = [];
  private readonly index = new Map<string, number>();

  constructor(bytes: Uint8Array) {
    const buf = Buffer.from(bytes);
    let off = 4;
    while (off < buf.length) {
      const score = buf.readFloatLE(off);
      const len = buf.readInt32LE(off + 4);
      this.vocab.push(buf.subarray(off + 8, off + 8 + len).toString('latin1'));
      this.scores.push(score);
      off += 8 + len;
    }
    this.vocab.forEach((s, i) => {
      if (!this.index.has(s)) this.index.set(s, i);
    });
  }

  private lookup(s: string): number {
    return this.index.get(s) ?? -1;
  }

  encode(text: string, bos: boolean): number[] {
    const bytes = Buffer.from(text, 'utf8');
    const tokens: number[] = [];
    if (bos) tokens.push(1);
    if (bytes.length > 0) tokens.push(this.lookup(' '));
    let buffer: number[] = [];
    for (let c = 0; c < bytes.length; c++) {
      if ((bytes[c] & 0xc0) !== 0x80) buffer = [];
      buffer.push(bytes[c]);
      if (c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80 && buffer.length < 4) continue;
      const id = this.lookup(Buffer.from(buffer).toString('latin1'));
      if (id !== -1) tokens.push(id);
      else for (const b of buffer) tokens.push(b + 3);
      buffer = [];
    }
    for (;;) {
      let bestScore = Math.fround(-1e10);
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = this.lookup(this.vocab[tokens[i]] + this.vocab[tokens[i + 1]]);
        if (id !== -1 && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    return tokens;
  }
}

/** A deterministic generator so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

withData('tok512.bin (stories260K)', () => {
  const bytes = new Uint8Array(fs.readFileSync(TOK512));
  const tok = Llama2cTokenizer.fromBytes(bytes, TOK512);
  const oracle = new RunCOracle(bytes);

  test('reads the whole vocabulary', () => {
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(Buffer.from(tok.pieces[1]).toString()).toBe('\n<s>\n');
    expect(Buffer.from(tok.pieces[3]).toString()).toBe('<0x00>');
  });

  test('hand-checked encodings', () => {
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('', { bos: true })).toEqual([1]);
    // " Once", " upon", " a", " time" are whole pieces of this vocabulary.
    const ids = tok.encode('Once upon a time', { bos: true });
    expect(ids[0]).toBe(1);
    expect(ids.slice(1).map((id) => Buffer.from(tok.pieces[id]).toString())).toEqual([' Once', ' upon', ' a', ' time']);
    // "é" is a piece (485); "ß" (C3 9F) is not: byte fallback gives its two bytes + 3.
    expect(tok.encode('é')).toEqual([410, 485]);
    expect(tok.encode('ß')).toEqual([410, 0xc3 + 3, 0x9f + 3]);
    // NUL (which run.c cannot receive) falls back to its byte token like any other byte.
    expect(tok.encode('\0')).toEqual([410, 3]);
    // 4-byte codepoint, not in the vocabulary: four byte tokens.
    expect(tok.encode('🙂')).toEqual([410, ...[...Buffer.from('🙂')].map((b) => b + 3)]);
  });

  test('encode equals run.c on every document of calib.txt', () => {
    const docs = fs.readFileSync(CALIB, 'utf8').split('\n\n');
    let mismatches = 0;
    let total = 0;
    for (const doc of docs) {
      const want = oracle.encode(doc, true);
      const got = tok.encode(doc, { bos: true });
      total += want.length;
      if (JSON.stringify(want) !== JSON.stringify(got)) mismatches++;
      if (mismatches === 1 && JSON.stringify(want) !== JSON.stringify(got)) expect({ doc, got }).toEqual({ doc, got: want });
    }
    expect(mismatches).toBe(0);
    expect(total).toBeGreaterThan(40000);
  });

  test('encodes the whole 200 KB file in one piece and decodes it back', () => {
    const text = fs.readFileSync(CALIB, 'utf8');
    const ids = tok.encode(text, { bos: true });
    expect(ids.length).toBeGreaterThan(40000);
    expect(tok.decode(ids)).toBe(text);
  });

  test('decodeToken follows run.c decode + safe_printf', () => {
    const once = tok.encode('Once')[0];
    expect(tok.decodeToken(once, 1)).toBe('Once');
    expect(tok.decodeToken(once, 5)).toBe(' Once');
    expect(tok.decodeToken(0x0a + 3, 400)).toBe('\n');
    // A lone non-ASCII byte is not printable for safe_printf; its bytes stay available.
    expect(tok.decodeToken(0xc3 + 3, 400)).toBe('');
    expect(Array.from(tok.decodeTokenBytes(0xc3 + 3, 400))).toEqual([0xc3]);
    expect(tok.decode(tok.encode('naïve ß 🙂 done'))).toBe('naïve ß 🙂 done');
    expect(() => tok.decodeToken(512)).toThrow(RangeError);
  });
});

describe('synthetic vocabularies', () => {
  // Bytes, then pieces over a tiny alphabet with many equal scores, so tie-breaking matters.
  function synthetic(seed: number): Uint8Array {
    const r = rng(seed);
    const pieces: string[] = ['<unk>', '\n<s>\n', '\n</s>\n'];
    const scores: number[] = [0, 0, 0];
    for (let b = 0; b < 256; b++) {
      pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      scores.push(0);
    }
    const alphabet = [' ', 'a', 'b', 'c', 'é'];
    const seen = new Set<string>();
    for (const ch of alphabet) {
      pieces.push(ch);
      scores.push(-100);
      seen.add(ch);
    }
    while (pieces.length < 259 + 60) {
      const len = 2 + Math.floor(r() * 4);
      let s = '';
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(r() * alphabet.length)];
      if (seen.has(s)) continue;
      seen.add(s);
      pieces.push(s);
      scores.push(-Math.floor(r() * 4));
    }
    return tokBin(pieces, scores);
  }

  test.each([1, 2, 3, 4, 5])('equals run.c with tied scores (seed %i)', (seed) => {
    const bytes = synthetic(seed);
    const tok = Llama2cTokenizer.fromBytes(bytes);
    const oracle = new RunCOracle(bytes);
    const r = rng(seed * 7919);
    const alphabet = [' ', 'a', 'b', 'c', 'é', 'z', '\n'];
    for (let t = 0; t < 200; t++) {
      const len = Math.floor(r() * 40);
      let text = '';
      for (let i = 0; i < len; i++) text += alphabet[Math.floor(r() * alphabet.length)];
      const bos = r() < 0.5;
      expect(tok.encode(text, { bos })).toEqual(oracle.encode(text, bos));
    }
  });

  test('malformed files give clear errors', () => {
    const good = tokBin(['<unk>', '\n<s>\n', '\n</s>\n', ' ', 'a'], [0, 0, 0, -1, -2]);
    expect(Llama2cTokenizer.fromBytes(good).vocabSize).toBe(5);
    expect(() => Llama2cTokenizer.fromBytes(good.subarray(0, good.length - 1), 'cut.bin')).toThrow(/cut.bin is malformed: token 4/);
    expect(() => Llama2cTokenizer.fromBytes(good.subarray(0, 2), 'x.bin')).toThrow(W4A8Error);
    expect(() => Llama2cTokenizer.fromBytes(new Uint8Array(Buffer.from('{"model": 1}')), 'j')).toThrow(/max_token_length/);
    const noSpace = tokBin(['<unk>', '\n<s>\n', '\n</s>\n', 'a'], [0, 0, 0, -1]);
    expect(() => Llama2cTokenizer.fromBytes(noSpace).encode('a')).toThrow(/dummy prefix/);
    const smallVocab = tokBin(['<unk>', '\n<s>\n', '\n</s>\n', ' '], [0, 0, 0, -1]);
    expect(() => Llama2cTokenizer.fromBytes(smallVocab).encode('q')).toThrow(/needs byte token 116/);
  });
});
