// tokenizer.json through @huggingface/tokenizers, on the GPT-2 tokenizer of tiny-random-gpt2-fp32.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HfTokenizer } from '../../lib/tokenize/hf';
import { W4A8Error } from '../../lib/util/errors';

const DIR = path.resolve(__dirname, '../../../shared/models/tiny-random-gpt2-fp32');
const FILE = path.join(DIR, 'tokenizer.json');
const have = fs.existsSync(FILE);
if (!have) console.warn(`skipping GPT-2 tokenizer tests: ${FILE} is missing`);
const withData = have ? describe : describe.skip;

withData('GPT-2 tokenizer.json', () => {
  const tok = HfTokenizer.fromFile(FILE);
  const vocab = JSON.parse(fs.readFileSync(path.join(DIR, 'vocab.json'), 'utf8')) as Record<string, number>;

  test('sizes and special ids come from the files', () => {
    // 50257 byte-level BPE tokens plus the added whitespace tokens up to id 50294.
    expect(tok.vocabSize).toBe(50295);
    expect(tok.bosId).toBe(vocab['<|endoftext|>']);
    expect(tok.eosId).toBe(50256);
  });

  test('encodes with the BPE vocabulary (ids checked against vocab.json)', () => {
    const ids = tok.encode('Hello world, hello again');
    expect(ids).toEqual([vocab['Hello'], vocab['Ġworld'], vocab[','], vocab['Ġhello'], vocab['Ġagain']]);
    // GPT-2's post-processor adds no special tokens: bos:true changes nothing.
    expect(tok.encode('Hello world', { bos: true })).toEqual(tok.encode('Hello world'));
  });

  test('round-trips text, including non-ASCII bytes', () => {
    const text = 'Once upon a time, Lily saw a café — naïve 🙂.';
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  test('decodeToken streams text that joins back to decode()', () => {
    const text = 'A dog ran. Then 🙂 it stopped';
    const ids = tok.encode(text);
    let streamed = '';
    ids.forEach((id, i) => (streamed += tok.decodeToken(id, i > 0 ? ids[i - 1] : undefined)));
    // The emoji is split across byte tokens; halves print as replacement characters, the rest is exact.
    expect(streamed.replace(/\uFFFD+/g, '?').startsWith('A dog ran. Then ')).toBe(true);
    expect(streamed.endsWith(' it stopped')).toBe(true);
    expect(() => tok.decodeToken(tok.vocabSize)).toThrow(RangeError);
  });
});

describe('bad tokenizer.json', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-hf-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('invalid JSON and a missing file give W4A8Error naming the file', () => {
    const bad = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(bad, '{"model": ');
    expect(() => HfTokenizer.fromFile(bad)).toThrow(W4A8Error);
    expect(() => HfTokenizer.fromFile(bad)).toThrow(/not valid JSON/);
    expect(() => HfTokenizer.fromFile(path.join(dir, 'nope.json'))).toThrow(/cannot read/);
  });

  test('a JSON object that is not a tokenizer gives W4A8Error', () => {
    expect(() => new HfTokenizer({ hello: 1 }, {}, 'x.json')).toThrow(W4A8Error);
  });
});
