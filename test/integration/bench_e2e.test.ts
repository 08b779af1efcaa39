// `w4a8 bench e2e` on stories260K (small: prompt 16, 4 new tokens, one round): the --json schema,
// all five variants ran from one quantization, and the greedy tokens agree where the numerics
// must; on the tiny-1m preset the two ONNX Runtime GenAI-layout variants too. No timing is asserted. Needs dist/ built and the shared stories260K checkpoint.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuiltCli } from '../helpers/built_cli';
import { SHARED_DIR } from '../helpers/shared_paths';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');

const missing = [path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin')].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`bench e2e test skipped: missing ${missing.join(', ')}`);
beforeAll(assertBuiltCli);
const describeIf = missing.length === 0 ? describe : describe.skip;

function w4a8(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describeIf('w4a8 bench e2e --model stories260K', () => {
  it('reports every variant in the documented schema, and w4a8-a16 decodes the same greedy tokens as ort-nbits-acc4', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-e2e-test-'));
    try {
      const seed = 1;
      console.log(`bench e2e test: prompt seed ${seed}`);
      const r = w4a8(['bench', 'e2e', '--model', 'stories260K', '--prompt-tokens', '16', '--new-tokens', '4', '--rounds', '1', '--seed', String(seed), '--json'], { TMPDIR: tmp });
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.status).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(typeof report.cpu).toBe('string');
      expect(typeof report.isa).toBe('string');
      expect(Number.isInteger(report.threads) && report.threads >= 1).toBe(true);
      expect(report.ortSpinning).toBe(true); // ONNX Runtime's own default, in every variant unless --ort-spinning off
      expect(report.baselineEngine).toBe('w4a8'); // the ORT variants on our call path unless --baseline-engine ort
      // The library the addon's sessions opened: the one inside the installed onnxruntime-node.
      if (!process.env.W4A8_ORT_LIBRARY) {
        const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
        expect(report.ortLibrary.startsWith(pkg + path.sep) && report.ortLibrary.endsWith(`${path.sep}libonnxruntime.so.1`)).toBe(true);
        expect(fs.existsSync(report.ortLibrary)).toBe(true);
      }
      expect(report.results.map((x: { variant: string }) => x.variant)).toEqual(['ort-fp32', 'ort-nbits-acc4', 'ort-nbits-acc0', 'w4a8-int8', 'w4a8-int8-unfused', 'w4a8-a16']);
      // No GenAI-layout variants for stories260K, and the report says why.
      expect(report.genaiSkipped).toMatch(/head size 8 is not a multiple of 16/);
      const byVariant = new Map<string, { tokens: number[]; decodeTokPerS: number; decodeWeightGBps: number }>();
      for (const x of report.results) {
        for (const key of ['variant', 'promptTokens', 'newTokens', 'prefillTokPerS', 'decodeTokPerS', 'peakRssMb']) expect(x).toHaveProperty(key);
        expect(x.promptTokens).toBe(16);
        expect(x.newTokens).toBe(4);
        expect(x.prefillTokPerS).toBeGreaterThan(0);
        expect(x.decodeTokPerS).toBeGreaterThan(0);
        // clear_refs resets VmHWM in Linux containers; elsewhere the field is null with the method saying why.
        if (x.peakRssMb === null) expect(report.rssMethod).toMatch(/unavailable/);
        else expect(x.peakRssMb).toBeGreaterThanOrEqual(x.rssBeforeMb);
        // The token chosen after the prefill, then one per step; all inside the vocabulary of 512.
        expect(x.tokens).toHaveLength(5);
        for (const t of x.tokens) expect(t >= 0 && t < 512).toBe(true);
        byVariant.set(x.variant, x);
      }
      console.log(`bench e2e tokens: ${report.results.map((x: { variant: string; tokens: number[] }) => `${x.variant} ${x.tokens.join(' ')}`).join('; ')}`);
      // Same int4 arrays: MatMulNBits at accuracy_level 4 and our float-activation path pick the same
      // tokens on this prompt (measured; w4a8-int8 and ort-fp32 differ from them within 5 tokens).
      expect(byVariant.get('w4a8-a16')!.tokens).toEqual(byVariant.get('ort-nbits-acc4')!.tokens);
      // Float activations on both sides (MatMulNBits accuracy_level 0, our W4A16 path): the same tokens.
      expect(byVariant.get('w4a8-a16')!.tokens).toEqual(byVariant.get('ort-nbits-acc0')!.tokens);
      // The fused decoder and the standard-op graph around the same W4A8MatMuls choose the same tokens.
      expect(byVariant.get('w4a8-int8')!.tokens).toEqual(byVariant.get('w4a8-int8-unfused')!.tokens);
      // Decode weight traffic = the linear weights' bytes x tokens/s: the int4 variants read the same
      // arrays; the float model reads 4 bytes per weight against half a byte plus group scales, here
      // padded to a whole 128-group along K = 64 (so about one byte per weight).
      const bytes = (v: string) => (byVariant.get(v)!.decodeWeightGBps * 1e9) / byVariant.get(v)!.decodeTokPerS;
      for (const v of ['ort-nbits-acc0', 'w4a8-int8', 'w4a8-int8-unfused', 'w4a8-a16']) expect(bytes(v) / bytes('ort-nbits-acc4')).toBeCloseTo(1, 6);
      expect(bytes('ort-fp32') / bytes('ort-nbits-acc4')).toBeGreaterThan(3.5);
      expect(bytes('ort-fp32') / bytes('ort-nbits-acc4')).toBeLessThan(8);
      // The temporary model folder is gone.
      expect(fs.readdirSync(tmp).filter((f) => f.startsWith('w4a8-bench-e2e-'))).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);

  it('adds the ONNX Runtime GenAI-layout variants (MatMulNBits and W4A8MatMul) for a preset whose head size GroupQueryAttention takes', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-e2e-test-'));
    try {
      const r = w4a8(['bench', 'e2e', '--model', 'tiny-1m', '--layers', '1', '--prompt-tokens', '8', '--new-tokens', '2', '--rounds', '1', '--baseline-engine', 'ort', '--json'], { TMPDIR: tmp });
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.status).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report.genaiSkipped).toBeUndefined();
      expect(report.baselineEngine).toBe('ort');
      expect(report.results.map((x: { variant: string }) => x.variant)).toEqual(
        ['ort-fp32', 'ort-nbits-acc4', 'ort-nbits-acc4-genai', 'ort-nbits-acc0', 'w4a8-int8', 'w4a8-int8-unfused', 'w4a8-int8-genai', 'w4a8-a16']);
      const by = new Map(report.results.map((x: { variant: string }) => [x.variant, x]));
      const bytes = (v: string) => { const x = by.get(v) as { decodeWeightGBps: number; decodeTokPerS: number; tokens: number[] }; expect(x.tokens).toHaveLength(3); return (x.decodeWeightGBps * 1e9) / x.decodeTokPerS; };
      // The GenAI-layout exports hold the same quantized arrays.
      for (const v of ['ort-nbits-acc4-genai', 'w4a8-int8-genai']) expect(bytes(v) / bytes('ort-nbits-acc4')).toBeCloseTo(1, 6);
      expect(fs.readdirSync(tmp).filter((f) => f.startsWith('w4a8-bench-e2e-'))).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);

  it('refuses a prompt that does not fit the model, and a missing --model, before timing anything', () => {
    const tooLong = w4a8(['bench', 'e2e', '--model', 'stories260K', '--prompt-tokens', '500', '--new-tokens', '64', '--quiet']);
    expect(tooLong.status).toBe(1);
    expect(tooLong.stderr).toMatch(/maximum length 512/);
    const none = w4a8(['bench', 'e2e', '--quiet']);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/--model/);
  }, 60_000);

  // Each variant's peak is its own process's: not the bench process's RSS, whatever that holds.
  it('measures each variant in a fresh process: a bench process holding 768 MiB does not raise the peaks', async () => {
    const { prepareE2eModels } = await import('../../lib/pipeline/e2e_models');
    const { runE2eBench } = await import('../../lib/bench/e2e');
    const ballast = Buffer.alloc(768 * 2 ** 20, 1);  // touched: resident in this process
    const set = await prepareE2eModels({ model: 'stories260K' });
    try {
      const report = await runE2eBench({ models: set.models, promptTokens: [16], newTokens: 2, rounds: 1, threads: 2, seed: 1, vocab: set.vocab, maxLength: set.maxLength });
      expect(report.rssMethod).toMatch(/fresh process per variant/);
      for (const r of report.results) {
        expect(r.peakRssMb).toBeGreaterThan(30);
        expect(r.peakRssMb!).toBeLessThan(500);  // stories260K in a fresh Node: about 150-200 MB
        expect(r.peakRssMb!).toBeGreaterThanOrEqual(r.rssBeforeMb!);
      }
    } finally {
      set.dispose();
    }
    expect(ballast[ballast.length - 1]).toBe(1);
  }, 120_000);
});
