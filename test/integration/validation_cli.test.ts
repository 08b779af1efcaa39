// Validation before work, through the built CLI: exit code 2 for every bad command-line value
// (one rule: lib/cli/numeric_options.ts), model-dependent limits checked after opening the model
// (exit 1, naming the limit), --exclude globs, non-finite results, and stderr hygiene (--json
// stderr holds only JSON lines; no ANSI codes when stderr is not a terminal). Uses stories260K from
// ../shared (a reported skip when it is absent). Needs dist/ built.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuiltCli, BIN } from '../helpers/built_cli';
import { SHARED_DIR } from '../helpers/shared_paths';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { makeFloatTensorLike, replaceInitializer, tensorDims, tensorToFloat32 } from '../../lib/onnx/tensor';
import { DataType } from '../../lib/onnx/dtype';

const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');
const CALIB = path.join(SHARED_DIR, 'data', 'tinystories', 'calib.txt');
const EVAL = path.join(SHARED_DIR, 'data', 'tinystories', 'eval-dev.txt');
const missing = [path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin'), CALIB, EVAL].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`validation CLI tests skipped: missing ${missing.join(', ')}`);
const describeIf = missing.length === 0 ? describe : describe.skip;

function w4a8(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const ANSI = /\u001b\[/;

describeIf('validation before work (stories260K)', () => {
  let dir: string;
  let model: string;
  beforeAll(() => {
    assertBuiltCli();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-validate-'));
    const r = w4a8(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', path.join(dir, 'fp32'), '--quiet']);
    if (r.status !== 0) throw new Error(`import failed (${r.status}): ${r.stderr}`);
    model = path.join(dir, 'fp32', 'model.onnx');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each([
    [['--calib-tokens', '-5'], /--calib-tokens must be an integer >= 1, got -5/],
    [['--calib-tokens', '1.5'], /--calib-tokens must be an integer >= 1, got 1.5/],
    [['--calib-seqlen', '0'], /--calib-seqlen must be an integer >= 2, got 0/],
    [['--calib-budget-mb', '0'], /--calib-budget-mb must be a number > 0, got 0/],
    [['--threads', '0'], /--threads must be an integer in 1\.\.1024, got 0/],
    [['--exclude', '['], /--exclude pattern "\[" opens a \[ class that never closes/],
    [['--exclude', 'no_such_layer*'], /--exclude "no_such_layer\*" matches no layer; layer names look like \/layers\.0\/attn\/q_proj\/MatMul/],
  ])('quantize %j: exit 2, one line naming the option and its range', (extra, message) => {
    const out = path.join(dir, 'bad', 'model.onnx');
    const r = w4a8(['quantize', model, '-o', out, '--calib', CALIB, ...extra]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(fs.existsSync(out)).toBe(false);
  });

  it.each([
    [['eval', '--text', EVAL, '--ctx', '1'], /--ctx must be an integer >= 2, got 1/],
    [['eval', '--text', EVAL, '--max-tokens', '0'], /--max-tokens must be an integer >= 1, got 0/],
    [['generate', '--max-new-tokens', '-1'], /--max-new-tokens must be an integer >= 0, got -1/],
  ])('%j: exit 2', (args, message) => {
    const [cmd, ...rest] = args;
    const r = w4a8([cmd, model, ...rest]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('an --exclude class glob matches layers: [qk]_proj keeps q and k in float', () => {
    const out = path.join(dir, 'glob', 'model.onnx');
    const r = w4a8(['quantize', model, '-o', out, '--aformat', 'none', '--exclude', '*/attn/[qk]_proj/*', '--json', '--quiet']);
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout);
    const excluded = summary.excluded.filter((e: { reason: string }) => e.reason === '--exclude').map((e: { name: string }) => e.name);
    expect(excluded).toHaveLength(10); // 5 layers x (q, k)
    expect(excluded.every((n: string) => /\/attn\/[qk]_proj\//.test(n))).toBe(true);
  });

  it('a calibration window longer than the model context is refused after opening the model, naming the limit (exit 1), and ORT prints nothing', () => {
    const out = path.join(dir, 'long', 'model.onnx');
    const r = w4a8(['quantize', model, '-o', out, '--method', 'gptq', '--calib', CALIB, '--calib-seqlen', '100000', '--json']);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    const last = lines.pop()!;
    expect(last).toMatch(/^w4a8: error: --calib-seqlen 100000 is longer than .* can take \(512 tokens, .*\); give --calib-seqlen 512 or less$/);
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    expect(r.stderr).not.toMatch(ANSI);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('--json: stderr holds only JSON lines (no ORT log lines) through a whole GPTQ quantize and eval', () => {
    const out = path.join(dir, 'json', 'model.onnx');
    const q = w4a8(['quantize', model, '-o', out, '--method', 'gptq', '--calib', CALIB, '--calib-tokens', '1024', '--json']);
    expect(q.status).toBe(0);
    const e = w4a8(['eval', out, '--text', EVAL, '--max-tokens', '1000', '--json']);
    expect(e.status).toBe(0);
    for (const stderr of [q.stderr, e.stderr]) {
      const lines = stderr.split('\n').filter((l) => l !== '');
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    }
  });

  it('no ANSI codes on stderr when it is not a terminal, even under CI=1 (picocolors would colour)', () => {
    const r = w4a8(['eval', model, '--text', path.join(dir, 'nope.txt')], { CI: '1' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^w4a8: error: /);
    expect(r.stderr).not.toMatch(ANSI);
    const forced = w4a8(['eval', model, '--text', path.join(dir, 'nope.txt')], { FORCE_COLOR: '1', NO_COLOR: '1' });
    expect(forced.stderr).not.toMatch(ANSI);
  });

  it('a graph with a node input nothing defines: inspect, eval and quantize refuse it with one line naming the fault (exit 1), writing nothing', () => {
    const m = loadModel(model);
    const node = m.proto.graph!.node.find((n) => n.opType === 'MatMul')!;
    node.input[0] = 'renamed_away';
    const bad = path.join(dir, 'dangling', 'model.onnx');
    fs.mkdirSync(path.dirname(bad), { recursive: true });
    saveModel(m, bad);
    fs.copyFileSync(path.join(STORIES, 'tok512.bin'), path.join(dir, 'dangling', 'tok512.bin'));
    const out = path.join(dir, 'dangling-out', 'model.onnx');
    for (const args of [['inspect', bad], ['inspect', bad, '--json'], ['eval', bad, '--text', EVAL, '--max-tokens', '100'], ['quantize', bad, '-o', out]]) {
      const r = w4a8(args);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`is not a loadable ONNX model: main graph: node \\d+ \\(MatMul "${node.name.replace(/[/.]/g, '\\$&')}"\\) reads "renamed_away", which no graph input, initializer or earlier node defines`));
    }
    expect(fs.existsSync(out)).toBe(false);
  });

  it('eval of a model whose logits overflow exits 1 naming the window, instead of printing "perplexity Infinity"', () => {
    const m = loadModel(model);
    // Scale the final norm so that the logits overflow float32.
    const norm = m.proto.graph!.initializer.find((t) => /norm/.test(t.name) && tensorDims(t).length === 1 && !/layers/.test(t.name))!;
    expect(norm).toBeDefined();
    const values = tensorToFloat32(m, norm).map((v) => v * 1e38);
    replaceInitializer(m, makeFloatTensorLike(norm.name, DataType.FLOAT, tensorDims(norm), values));
    const bad = path.join(dir, 'overflow', 'model.onnx');
    fs.mkdirSync(path.dirname(bad), { recursive: true });
    saveModel(m, bad);
    fs.copyFileSync(path.join(STORIES, 'tok512.bin'), path.join(dir, 'overflow', 'tok512.bin'));
    const r = w4a8(['eval', bad, '--text', EVAL, '--max-tokens', '600']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n').pop()).toMatch(/w4a8: error: .*(non-finite logits in window 1 \(tokens 0\.\.|perplexity overflows)/);
  });
});
