// `w4a8 generate` end to end through bin/w4a8.js: the KV cache against full recompute (same token
// ids) on stories260K (imported), tiny-random-gpt2 (an ORT GenAI export, past_N packed key and
// value) and a random-weight preset; the model's maximum length in generate and eval; Ctrl-C.
// Needs dist/ built.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SHARED_DIR } from '../helpers/shared_paths';
import { assertBuiltCli, BIN } from '../helpers/built_cli';
import { loadModel } from '../../lib/onnx/model';
import { DataType, tensorToFloat32 } from '../../lib/onnx/tensor';

const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');
const GPT2_MODEL = path.join(SHARED_DIR, 'models', 'tiny-random-gpt2-fp32', 'past.onnx');
const EVAL_TEXT = path.join(SHARED_DIR, 'data', 'tinystories', 'eval-dev.txt');
const ENV = { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '' };

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: ENV, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface GenerateJson {
  text: string;
  ids: number[];
  promptTokens: number;
  newTokens: number;
  stop: string;
  kvCache: boolean;
  maxLength: number | null;
  prefillTokPerS: number;
  decodeTokPerS: number;
}

function generateJson(args: string[]): GenerateJson {
  const r = w4a8(['generate', ...args, '--json']);
  if (r.status !== 0) throw new Error(`w4a8 generate ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as GenerateJson;
}

/** Cached and uncached runs of the same arguments: the same ids, each flagged as it ran. */
function expectSameWithAndWithoutCache(args: string[]): GenerateJson {
  const cached = generateJson(args);
  const recomputed = generateJson([...args, '--no-kv-cache']);
  expect(cached.kvCache).toBe(true);
  expect(recomputed.kvCache).toBe(false);
  expect(cached.ids).toEqual(recomputed.ids);
  expect(cached.text).toBe(recomputed.text);
  expect(cached.stop).toBe(recomputed.stop);
  return cached;
}

function oneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  return lines[0];
}

beforeAll(assertBuiltCli);

const haveStories = [path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin')].every((p) => fs.existsSync(p));
if (!haveStories) console.warn(`stories260K generate tests skipped: ${STORIES} lacks stories260K.bin or tok512.bin`);
(haveStories ? describe : describe.skip)('w4a8 generate on stories260K (imported with a KV cache)', () => {
  let dir: string;
  let model: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-generate-'));
    const r = w4a8(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', dir, '--quiet']);
    if (r.status !== 0) throw new Error(`w4a8 import llama2c failed (${r.status}): ${r.stderr}`);
    model = path.join(dir, 'model.onnx');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives the same token ids with and without the KV cache (empty prompt and a prompt)', () => {
    const empty = expectSameWithAndWithoutCache([model]);
    expect(empty.newTokens).toBeGreaterThan(100);
    const prompted = expectSameWithAndWithoutCache([model, '--prompt', 'Once upon a time, a little dog', '--max-new-tokens', '64']);
    expect(prompted.promptTokens).toBeGreaterThan(5);
    expect(prompted.maxLength).toBe(512);
    expect(prompted.prefillTokPerS).toBeGreaterThan(0);
    expect(prompted.decodeTokPerS).toBeGreaterThan(0);
  });

  it('streams text on stdout and prints tokens/s on stderr', () => {
    const r = w4a8(['generate', model, '--prompt', 'Once upon a time', '--max-new-tokens', '20']);
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith('Once upon a time')).toBe(true);
    expect(r.stderr).toMatch(/^20 new tokens \(KV cache\): prefill \d+ tokens at [\d.]+ tokens\/s, decode [\d.]+ tokens\/s$/m);
  });

  it('refuses a prompt longer than the model with one line naming the limit and its source', () => {
    const prompt = 'Once upon a time '.repeat(300);
    const r = w4a8(['generate', model, '--prompt', prompt]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toMatch(/^w4a8: error: the prompt is 1202 tokens but .*model\.onnx takes at most 512 \(the rope\.cos table .*\); shorten the prompt$/);
  });

  it('stops at the maximum length (both paths), with a warning on stderr', () => {
    const prompt = 'Once upon a time '.repeat(120);
    const r = expectSameWithAndWithoutCache([model, '--prompt', prompt, '--max-new-tokens', '400']);
    expect(r.stop).toBe('max-length');
    // Positions 0..511 were fed; the last one still picks a token.
    expect(r.ids).toHaveLength(513);
    const plain = w4a8(['generate', model, '--prompt', prompt, '--max-new-tokens', '400']);
    expect(plain.status).toBe(0);
    expect(plain.stderr).toMatch(/^warning: stopped at the model's maximum length of 512 tokens \(the rope\.cos table/m);
  });

  (fs.existsSync(EVAL_TEXT) ? it : it.skip)('eval caps --ctx at the maximum length with a warning', () => {
    const r = w4a8(['eval', model, '--text', EVAL_TEXT, '--ctx', '1024', '--max-tokens', '1500']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/over 1500 tokens, 3 windows of ctx 512\)/);
    expect(r.stderr).toMatch(/^warning: --ctx 1024 is longer than .*model\.onnx can take \(512 tokens, the rope\.cos table/);
  });

  it('exits 130 with one line on Ctrl-C (SIGINT) during generation', async () => {
    const child = spawn(process.execPath, [BIN, 'generate', model, '--prompt', 'Once upon a time '.repeat(100), '--max-new-tokens', '400', '--no-kv-cache'], {
      env: ENV,
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    // Interrupt once generation has started (the prompt is echoed first, then tokens arrive);
    // an early exit (a failure) ends the wait too and shows in the checks below.
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.length > 'Once upon a time '.length * 100) resolve();
      });
      void exit.then(() => resolve());
    });
    child.kill('SIGINT');
    const { code, signal } = await exit;
    if (code !== 130) console.log(`generate exited ${code}; stderr: ${stderr}`);
    expect(signal).toBeNull();
    expect(code).toBe(130);
    // The notice printed at the signal, then the one error line; no stack trace.
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toEqual([expect.stringMatching(/^Ctrl-C: stopping at the next safe point/), 'w4a8: error: interrupted (Ctrl-C): stopped cleanly, nothing written']);
  });
});

(haveStories ? it : it.skip)('ends quietly with exit 0 when the reader of stdout goes away (| head)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-generate-pipe-'));
  try {
    expect(w4a8(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', dir, '--quiet']).status).toBe(0);
    const child = spawn(process.execPath, [BIN, 'generate', path.join(dir, 'model.onnx'), '--prompt', 'Once upon a time '.repeat(100), '--max-new-tokens', '400', '--no-kv-cache'], {
      env: ENV,
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    child.stdout.once('data', () => child.stdout.destroy());
    expect(await exit).toBe(0);
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

(fs.existsSync(GPT2_MODEL) ? describe : describe.skip)('w4a8 generate on tiny-random-gpt2 (ORT GenAI export, past_N inputs, int32 ids)', () => {
  it('gives the same token ids with and without the KV cache, and reads context_length from genai_config.json', () => {
    // Characters and common pieces: ids below the model's 1000-entry vocabulary.
    const r = expectSameWithAndWithoutCache([GPT2_MODEL, '--prompt', 'a b c', '--max-new-tokens', '48']);
    expect(r.newTokens).toBe(48);
    expect(r.maxLength).toBe(512);
    expect(new Set(r.ids.slice(r.promptTokens)).size).toBeGreaterThan(1);
    // Sampled (random weights give a flat distribution, so the seed decides much): the same too.
    const sampled = expectSameWithAndWithoutCache([GPT2_MODEL, '--prompt', 'a b c', '--max-new-tokens', '32', '--temperature', '1', '--top-k', '50', '--seed', '9']);
    expect(sampled.ids).not.toEqual(r.ids.slice(0, sampled.ids.length));
  });
});

describe('w4a8 import llama2c --random', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-random-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes a small preset with --layers, seeded, and it generates the same ids with and without the cache', () => {
    const seed = 5;
    console.log(`seed ${seed}`);
    const out = path.join(dir, 'a');
    const r = w4a8(['import', 'llama2c', '--random', 'tiny-260k', '--layers', '2', '--seed', String(seed), '-o', out, '--json', '--quiet']);
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
    expect(fs.readdirSync(out).sort()).toEqual(['model.onnx', 'model.onnx_data', 'tokenizer.bin']);
    // The weights live in the side file; the graph file holds structure and small constants.
    expect(fs.statSync(path.join(out, 'model.onnx_data')).size).toBeGreaterThan(4 * 512 * 64 * 2);
    const g = expectSameWithAndWithoutCache([path.join(out, 'model.onnx'), '--prompt', 'hello', '--max-new-tokens', '24']);
    expect(g.promptTokens).toBe(7); // BOS, the dummy prefix, and five byte tokens
    expect(g.newTokens).toBeGreaterThan(0);

    // One seed, one model; another seed, other weights.
    const again = path.join(dir, 'b');
    expect(w4a8(['import', 'llama2c', '--random', 'tiny-260k', '--layers', '2', '--seed', String(seed), '-o', again, '--quiet']).status).toBe(0);
    const other = path.join(dir, 'c');
    expect(w4a8(['import', 'llama2c', '--random', 'tiny-260k', '--layers', '2', '--seed', String(seed + 1), '-o', other, '--quiet']).status).toBe(0);
    const data = (d: string) => fs.readFileSync(path.join(d, 'model.onnx_data'));
    expect(data(again).equals(data(out))).toBe(true);
    expect(data(other).equals(data(out))).toBe(false);
  });

  it('--dtype float16 writes the same weights narrowed to fp16, with fp16 activations and cache, and ORT runs it with and without the cache', () => {
    const seed = 3;
    console.log(`seed ${seed}`);
    const f32 = path.join(dir, 'f32');
    const f16 = path.join(dir, 'f16');
    expect(w4a8(['import', 'llama2c', '--random', 'tiny-260k', '--layers', '2', '--seed', String(seed), '-o', f32, '--quiet']).status).toBe(0);
    const r = w4a8(['import', 'llama2c', '--random', 'tiny-260k', '--layers', '2', '--seed', String(seed), '--dtype', 'float16', '-o', f16, '--json', '--quiet']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).dtype).toBe('float16');
    const m32 = loadModel(path.join(f32, 'model.onnx'));
    const m16 = loadModel(path.join(f16, 'model.onnx'));
    const floats16 = m16.proto.graph!.initializer.filter((t) => t.dataType === DataType.FLOAT16);
    // Every float initializer (weights, norms, RoPE tables, scalar constants) and every float input/output is fp16.
    expect(m16.proto.graph!.initializer.filter((t) => t.dataType === DataType.FLOAT)).toEqual([]);
    expect(floats16.length).toBe(m32.proto.graph!.initializer.filter((t) => t.dataType === DataType.FLOAT).length);
    for (const v of [...m16.proto.graph!.input, ...m16.proto.graph!.output]) {
      const elem = v.type?.value.case === 'tensorType' ? v.type.value.value.elemType : undefined;
      if (v.name !== 'input_ids' && v.name !== 'attention_mask' && v.name !== 'position_ids') expect([v.name, elem]).toEqual([v.name, DataType.FLOAT16]);
    }
    // The same values as the fp32 import, rounded to fp16 (relative step 2^-11; tiny values keep an absolute floor).
    const byName = new Map(m32.proto.graph!.initializer.map((t) => [t.name, t]));
    let compared = 0;
    for (const t of floats16) {
      const want = tensorToFloat32(m32, byName.get(t.name)!);
      const got = tensorToFloat32(m16, t);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) {
        if (!Number.isFinite(want[i])) expect(got[i]).toBe(want[i]);
        else if (Math.abs(got[i] - want[i]) > Math.abs(want[i]) * 2 ** -11 + 2 ** -24) throw new Error(`${t.name}[${i}]: fp16 ${got[i]} vs fp32 ${want[i]}`);
      }
      compared += want.length;
    }
    expect(compared).toBeGreaterThan(100_000);
    expect(fs.statSync(path.join(f16, 'model.onnx_data')).size).toBeLessThan(fs.statSync(path.join(f32, 'model.onnx_data')).size * 0.55);
    const g = expectSameWithAndWithoutCache([path.join(f16, 'model.onnx'), '--prompt', 'hello', '--max-new-tokens', '16']);
    expect(g.newTokens).toBeGreaterThan(0);
    // --dtype is an option of --random only.
    const stray = w4a8(['import', 'llama2c', 'x.bin', '-t', 'tok.bin', '--dtype', 'float16', '-o', path.join(dir, 'z')]);
    expect(stray.status).toBe(2);
    expect(oneErrorLine(stray.stderr)).toMatch(/--dtype go with --random/);
  });

  it('refuses an unknown preset and a checkpoint given with --random (exit 2)', () => {
    const bad = w4a8(['import', 'llama2c', '--random', 'llama-900b', '-o', path.join(dir, 'x')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/tinyllama-1\.1b/);
    const both = w4a8(['import', 'llama2c', 'x.bin', '--random', 'tiny-260k', '-o', path.join(dir, 'y')]);
    expect(both.status).toBe(2);
    expect(oneErrorLine(both.stderr)).toMatch(/--random makes its own weights/);
  });
});
