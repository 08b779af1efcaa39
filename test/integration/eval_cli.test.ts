// `w4a8 eval` / `w4a8 generate` end to end through bin/w4a8.js (needs `npx tsc -p tsconfig.build.json`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SHARED_DIR } from '../helpers/shared_paths';
import { assertBuiltCli } from '../helpers/built_cli';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const GPT2 = path.join(SHARED_DIR, 'models', 'tiny-random-gpt2-fp32');
const GPT2_MODEL = path.join(GPT2, 'past.onnx');
const GPT2_TOKENIZER = path.join(GPT2, 'tokenizer.json');

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failure prints exactly one line on stderr, nothing on stdout, and no stack trace. */
function expectOneLineError(r: { stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const haveGpt2 = fs.existsSync(GPT2_MODEL) && fs.existsSync(GPT2_TOKENIZER);
if (!haveGpt2) console.warn(`eval CLI tests skipped: ${GPT2} is absent`);
const describeCli = haveGpt2 ? describe : describe.skip;
beforeAll(assertBuiltCli);

describeCli('w4a8 eval / generate (CLI)', () => {
  let dir: string;
  // tiny-random-gpt2 has a 1000-entry vocabulary under GPT-2's 50k tokenizer: only text made of
  // the commonest pieces fits it (each document must also start with a piece whose id < 1000).
  const fitting = 'in the end it is on the way to the end and he is at the end\n\nhe said that it was on and in at the of\n';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-eval-cli-'));
    fs.writeFileSync(path.join(dir, 'fits.txt'), fitting);
    fs.writeFileSync(path.join(dir, 'prose.txt'), 'Once upon a time there was a zebra called Xylophone.\n');
    fs.writeFileSync(path.join(dir, 'empty.txt'), '\r\n\r\n   \n');
    fs.writeFileSync(path.join(dir, 'junk.onnx'), 'definitely not a protobuf\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('eval --oov-id runs tiny-random-gpt2 on ordinary prose, warning how many ids were mapped', () => {
    const r = w4a8(['eval', GPT2_MODEL, '--text', path.join(dir, 'prose.txt'), '--tokenizer', GPT2_TOKENIZER, '--oov-id', '98', '--json']);
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout.trim());
    expect(Number.isFinite(result.ppl)).toBe(true);
    const warning = r.stderr.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'log' && e.level === 'warn');
    expect(warning.message).toMatch(/^\d+ of \d+ tokens of .* are outside the model's 1000-entry vocabulary and were mapped to id 98/);
    // Without the option the same text is refused, and the message names the option.
    const refused = w4a8(['eval', GPT2_MODEL, '--text', path.join(dir, 'prose.txt'), '--tokenizer', GPT2_TOKENIZER]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/does not fit this model.*--oov-id/);
  });

  it('eval --json prints exactly one JSON object with a finite perplexity (tiny-random-gpt2)', () => {
    const r = w4a8(['eval', GPT2_MODEL, '--text', path.join(dir, 'fits.txt'), '--tokenizer', GPT2_TOKENIZER, '--ctx', '8', '--json']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]);
    expect(Object.keys(result).sort()).toEqual(['ctx', 'nll', 'ppl', 'tokens', 'windows']);
    expect(Number.isFinite(result.ppl)).toBe(true);
    expect(result.ppl).toBeGreaterThan(1);
    expect(result.ctx).toBe(8);
    expect(result.nll).toBeCloseTo(Math.log(result.ppl), 10);
    // Progress went to stderr as JSON lines, one update per window.
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'progress')).toHaveLength(result.windows);
  });

  it('eval prints a short human line and honours --max-tokens', () => {
    const r = w4a8(['eval', GPT2_MODEL, '--text', path.join(dir, 'fits.txt'), '--tokenizer', GPT2_TOKENIZER, '--max-tokens', '5']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ppl \d+\.\d{4} \(nll \d+\.\d{4}\/token over 5 tokens, 1 windows of ctx 512\)\n$/);
  });

  it('generate streams greedy text and --json reports ids', () => {
    const r = w4a8(['generate', GPT2_MODEL, '--tokenizer', GPT2_TOKENIZER, '--prompt', 'in the', '--max-new-tokens', '6', '--json']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.promptTokens).toBe(2);
    expect(out.ids.length).toBe(out.promptTokens + out.newTokens);
    expect(out.text.startsWith('in the')).toBe(true);
    const plain = w4a8(['generate', GPT2_MODEL, '--tokenizer', GPT2_TOKENIZER, '--prompt', 'in the', '--max-new-tokens', '6']);
    expect(plain.status).toBe(0);
    expect(plain.stdout).toBe(out.text + '\n');
  });

  it.each([
    ['a missing model file', ['eval', 'MISSING', '--text', 'fits.txt', '--tokenizer', GPT2_TOKENIZER], 1, /model file not found: .*nope\.onnx/],
    ['a file that is not ONNX', ['eval', 'JUNK', '--text', 'fits.txt', '--tokenizer', GPT2_TOKENIZER], 1, /junk\.onnx is not an ONNX model \(protobuf parse failed/],
    ['empty text', ['eval', GPT2_MODEL, '--text', 'empty.txt', '--tokenizer', GPT2_TOKENIZER], 1, /empty\.txt gives no tokens/],
    ['a tokenizer that does not fit the model', ['eval', GPT2_MODEL, '--text', 'prose.txt', '--tokenizer', GPT2_TOKENIZER], 1, /the tokenizer does not fit this model/],
    ['ctx < 2', ['eval', GPT2_MODEL, '--text', 'fits.txt', '--ctx', '1'], 2, /--ctx must be an integer >= 2, got 1/],
    ['a non-integer --max-tokens', ['eval', GPT2_MODEL, '--text', 'fits.txt', '--max-tokens', '2.5'], 2, /--max-tokens must be an integer >= 1/],
    ['generate with a missing model', ['generate', 'MISSING'], 1, /model file not found/],
    ['generate with negative --max-new-tokens', ['generate', GPT2_MODEL, '--max-new-tokens', '-3'], 2, /--max-new-tokens must be an integer >= 0/],
  ])('fails cleanly on %s', (_what, args, code, pattern) => {
    const resolved = (args as string[]).map((a) =>
      a === 'MISSING' ? path.join(dir, 'nope.onnx') : a === 'JUNK' ? path.join(dir, 'junk.onnx') : a.endsWith('.txt') ? path.join(dir, a) : a,
    );
    const r = w4a8(resolved);
    expect(r.status).toBe(code);
    expectOneLineError(r, pattern as RegExp);
    expect(r.stderr).toMatch(/^w4a8: error: /);
  });
});
