// stories260K end to end: import the llama2.c checkpoint, then perplexity under the protocol
// (an independent implementation gives 4.7954 on eval-dev.txt, ctx 512, 20000 tokens) and
// greedy text identical to llama2.c's `run -t 0 -n 256` output. Needs dist/ built.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SHARED_DIR } from '../helpers/shared_paths';
import { assertBuiltCli } from '../helpers/built_cli';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const SHARED = SHARED_DIR;
const STORIES = path.join(SHARED, 'models', 'stories260K');
const EVAL_TEXT = path.join(SHARED, 'data', 'tinystories', 'eval-dev.txt');
const GREEDY = path.join(STORIES, 'greedy_empty_prompt.txt');
const GPT2_TOKENIZER = path.join(SHARED, 'models', 'tiny-random-gpt2-fp32', 'tokenizer.json');

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const missing = [path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin'), EVAL_TEXT, GREEDY].filter(
  (p) => !fs.existsSync(p),
);
if (missing.length > 0) console.warn(`stories260K eval tests skipped: missing ${missing.join(', ')}`);
beforeAll(assertBuiltCli);
const describeIf = missing.length === 0 ? describe : describe.skip;

describeIf('stories260K: import, perplexity, greedy generation', () => {
  let dir: string;
  let model: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-eval-stories-'));
    const r = w4a8(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', dir, '--quiet']);
    if (r.status !== 0) throw new Error(`w4a8 import llama2c failed (${r.status}): ${r.stderr}`);
    model = path.join(dir, 'model.onnx');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives ppl 4.7954 +- 0.005 on eval-dev.txt (ctx 512, 20000 tokens)', () => {
    const r = w4a8(['eval', model, '--text', EVAL_TEXT, '--ctx', '512', '--max-tokens', '20000', '--json', '--quiet']);
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.tokens).toBe(20000);
    expect(result.ctx).toBe(512);
    expect(result.windows).toBe(Math.ceil(20000 / 511));
    expect(Math.abs(result.ppl - 4.7954)).toBeLessThan(0.005);
    expect(result.nll).toBeCloseTo(Math.log(result.ppl), 10);
  });

  it('prints exactly llama2.c greedy_empty_prompt.txt with the default 256 new tokens', () => {
    const expected = fs.readFileSync(GREEDY, 'utf8');
    const r = w4a8(['generate', model]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(expected);
    // llama2.c's -n 256 is 256 forward steps from BOS, i.e. 256 new tokens: one fewer drops the last token.
    const short = w4a8(['generate', model, '--max-new-tokens', '255']);
    expect(short.status).toBe(0);
    expect(short.stdout.length).toBeLessThan(expected.length);
    expect(expected.startsWith(short.stdout.slice(0, -1))).toBe(true);
  });

  it('continues a prompt, echoing it first as llama2.c does', () => {
    const r = w4a8(['generate', model, '--prompt', 'Once upon a time', '--max-new-tokens', '20', '--json']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.text.startsWith('Once upon a time')).toBe(true);
    expect(out.newTokens).toBe(20);
    // The greedy story from BOS starts the same way, so the prompt's continuation matches it.
    const story = fs.readFileSync(GREEDY, 'utf8');
    expect(story.startsWith(out.text)).toBe(true);
  });

  // Missing shared data is a reported skip (jest lists it as skipped), never a pass.
  const haveGpt2Tokenizer = fs.existsSync(GPT2_TOKENIZER);
  if (!haveGpt2Tokenizer) console.warn(`skipped: ${GPT2_TOKENIZER} is absent`);
  (haveGpt2Tokenizer ? it : it.skip)('refuses a tokenizer whose ids do not fit the 512-entry vocabulary', () => {
    const r = w4a8(['eval', model, '--text', EVAL_TEXT, '--tokenizer', GPT2_TOKENIZER, '--max-tokens', '100']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/the model's logits have 512 entries; the tokenizer does not fit this model/);
  });
});
