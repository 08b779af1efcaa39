// loadTokenizer picks the implementation by extension or content; findTokenizerBeside finds a model's tokenizer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer, findTokenizerBeside } from '../../lib/tokenize/load';
import { Llama2cTokenizer } from '../../lib/tokenize/llama2c';
import { HfTokenizer } from '../../lib/tokenize/hf';
import { W4A8Error } from '../../lib/util/errors';

const SHARED = path.resolve(__dirname, '../../../shared/models');
const TOK512 = path.join(SHARED, 'stories260K/tok512.bin');
const GPT2 = path.join(SHARED, 'tiny-random-gpt2-fp32/tokenizer.json');
const have = fs.existsSync(TOK512) && fs.existsSync(GPT2);
if (!have) console.warn(`skipping loadTokenizer tests on real files: ${TOK512} or ${GPT2} is missing`);
const withData = have ? test : test.skip;

describe('loadTokenizer / findTokenizerBeside', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-tokload-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  withData('detects llama2.c by default and tokenizer.json by extension or content', () => {
    expect(loadTokenizer(TOK512)).toBeInstanceOf(Llama2cTokenizer);
    expect(loadTokenizer(GPT2)).toBeInstanceOf(HfTokenizer);
    const renamed = path.join(dir, 'gpt2-tokenizer.data');
    fs.copyFileSync(GPT2, renamed);
    const tok = loadTokenizer(renamed);
    expect(tok).toBeInstanceOf(HfTokenizer);
    expect(tok.vocabSize).toBe(50295);
  });

  test('missing, directory and malformed inputs give W4A8Error', () => {
    expect(() => loadTokenizer(path.join(dir, 'absent.bin'))).toThrow(/does not exist/);
    expect(() => loadTokenizer(dir)).toThrow(W4A8Error);
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2]));
    expect(() => loadTokenizer(junk)).toThrow(/not a llama2.c tokenizer/);
    expect(() => loadTokenizer('')).toThrow(TypeError);
  });

  test('finds tokenizer.json, then tokenizer.bin, then tok*.bin beside a model', () => {
    const model = path.join(dir, 'm', 'model.onnx');
    fs.mkdirSync(path.dirname(model));
    fs.writeFileSync(model, 'x');
    expect(findTokenizerBeside(model)).toBeUndefined();
    fs.writeFileSync(path.join(dir, 'm', 'tok512.bin'), 'x');
    expect(findTokenizerBeside(model)).toBe(path.join(dir, 'm', 'tok512.bin'));
    fs.writeFileSync(path.join(dir, 'm', 'tokenizer.bin'), 'x');
    expect(findTokenizerBeside(model)).toBe(path.join(dir, 'm', 'tokenizer.bin'));
    fs.writeFileSync(path.join(dir, 'm', 'tokenizer.json'), '{}');
    expect(findTokenizerBeside(model)).toBe(path.join(dir, 'm', 'tokenizer.json'));
    // The folder itself works too; a path that does not exist looks in its parent.
    expect(findTokenizerBeside(path.join(dir, 'm'))).toBe(path.join(dir, 'm', 'tokenizer.json'));
    expect(findTokenizerBeside(path.join(dir, 'm', 'not-yet.onnx'))).toBe(path.join(dir, 'm', 'tokenizer.json'));
    expect(findTokenizerBeside(path.join(dir, 'nowhere', 'x.onnx'))).toBeUndefined();
  });
});
