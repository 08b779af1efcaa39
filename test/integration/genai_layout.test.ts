// `import llama2c --layout genai`: the decoder in ONNX Runtime GenAI's graph of contrib ops
// (GroupQueryAttention with rotary and the KV cache, SkipSimplifiedLayerNormalization) computes what
// the standard-op graph of the same weights computes, through onnxruntime-node: a whole sequence, a
// prompt, a multi-token continuation after a past and single decode steps, in both engines (each
// keeps the cache in one buffer that GroupQueryAttention writes in place, as ORT GenAI does); greedy
// decoding with the cache picks full recompute's tokens; quantized with `--format w4a8` it runs in the addon's session
// and matches MatMulNBits on the same weights, and its fused form (CachedAttention, RmsNorm, merged
// projections; interleaved and Hugging Face rotary pairs) matches the unfused one. Needs dist/ and the addon built.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { importRandomLlama } from '../../lib/import/llama2c_random';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { openDecoder, type DecoderSession, type KvCache } from '../../lib/ort/session';
import type { Logits } from '../../lib/native/eval_ops';
import { assertBuiltCli } from '../helpers/built_cli';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');

beforeAll(assertBuiltCli);

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Largest |a - b| over the largest |a|: the logits' relative disagreement. */
function relativeDiff(a: Logits, b: Logits): number {
  expect(b.data.length).toBe(a.data.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.data.length; i++) {
    diff = Math.max(diff, Math.abs(a.data[i] - b.data[i]));
    scale = Math.max(scale, Math.abs(a.data[i]));
  }
  expect(scale).toBeGreaterThan(0.1); // not a degenerate all-zero comparison
  return diff / scale;
}

function argmax(l: Logits, row = 0): number {
  let best = 0;
  for (let i = 1; i < l.vocab; i++) if (l.data[row * l.vocab + i] > l.data[row * l.vocab + best]) best = i;
  return best;
}

/** The logits a session gives for `ids`: the whole sequence at once, then by cache steps of the given sizes. */
async function byWholeAndSteps(s: DecoderSession, ids: number[], chunks: number[]): Promise<Logits[]> {
  const out = [await s.logits(ids)];
  let cache: KvCache | undefined;
  let at = 0;
  for (const n of chunks) {
    const r = await s.step!(ids.slice(at, at + n), cache);
    out.push(r.logits);
    cache = r.cache;
    at += n;
  }
  expect(at).toBe(ids.length);
  return out;
}

/** Opens both models, runs byWholeAndSteps on each, and holds every logits pair to `tolerance` (relative). */
async function expectSameLogits(a: string | DecoderSession, b: string | DecoderSession, ids: number[], chunks: number[], tolerance: number): Promise<void> {
  const x = typeof a === 'string' ? await openDecoder(a) : a;
  const y = typeof b === 'string' ? await openDecoder(b) : b;
  try {
    const [lx, ly] = [await byWholeAndSteps(x, ids, chunks), await byWholeAndSteps(y, ids, chunks)];
    for (let i = 0; i < lx.length; i++) expect(relativeDiff(lx[i], ly[i])).toBeLessThan(tolerance);
  } finally {
    if (typeof a === 'string') await x.release();
    if (typeof b === 'string') await y.release();
  }
}

/** `w4a8 quantize` RTN g32 with float activations; the run must succeed. */
function quantize(input: string, out: string, format: string, extra: readonly string[] = []): void {
  const r = w4a8(['quantize', input, '--method', 'rtn', '--group', '32', '--aformat', 'none', '--format', format, ...extra, '-o', out, '--quiet']);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.status).toBe(0);
}

describe('import llama2c --layout genai against the standard layout (same weights)', () => {
  const seed = Number(process.env.W4A8_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  let dir: string;
  let standard: string, genai: string;
  // BOS, then ids drawn from the seed: a prompt of 6, a continuation of 3 after it, two single steps.
  let ids: number[];
  const chunks = [6, 3, 1, 1];

  beforeAll(async () => {
    console.log(`genai layout: seed ${seed} (W4A8_TEST_SEED=${seed} replays it)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-genai-'));
    standard = (await importRandomLlama('tiny-1m', path.join(dir, 'standard'), { layers: 2, seed })).modelPath;
    genai = (await importRandomLlama('tiny-1m', path.join(dir, 'genai'), { layers: 2, seed, layout: 'genai' })).modelPath;
    let x = seed % 2 ** 31 || 1;
    ids = [1, ...Array.from({ length: 10 }, () => 3 + ((x = (x * 48271) % 2147483647) % 509))];
  }, 60_000);
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is ONNX Runtime contrib ops: GroupQueryAttention per layer, the norms fused with the residual adds, no standard attention', () => {
    const graph = loadModel(genai).proto.graph!;
    const count = (op: string, domain = 'com.microsoft') => graph.node.filter((n) => n.opType === op && (n.domain ?? '') === domain).length;
    expect(count('GroupQueryAttention')).toBe(2);
    expect(count('SkipSimplifiedLayerNormalization')).toBe(4); // ffn norms, layer 1's attention norm, the final norm
    expect(count('SimplifiedLayerNormalization', '')).toBe(1); // layer 0's attention norm (nothing to add yet)
    for (const gone of ['Softmax', 'Concat', 'ReduceMean', 'Expand']) expect(graph.node.some((n) => n.opType === gone)).toBe(false);
    expect(graph.input.map((i) => i.name)).not.toContain('position_ids'); // positions come from the attention mask
    expect(graph.input.map((i) => i.name)).toContain('past_key_values.1.value');
  });

  it('gives the standard graph\'s logits: whole sequence, prompt, continuation after a past, single steps', async () => {
    const a = await openDecoder(standard, { engine: 'ort' });
    const b = await openDecoder(genai, { engine: 'ort' });
    try {
      const [la, lb] = [await byWholeAndSteps(a, ids, chunks), await byWholeAndSteps(b, ids, chunks)];
      for (let i = 0; i < la.length; i++) expect(relativeDiff(la[i], lb[i])).toBeLessThan(1e-5);
    } finally {
      await a.release();
      await b.release();
    }
  }, 60_000);

  it.each(['ort', 'w4a8'] as const)('in the %s engine keeps the cache in one buffer (GroupQueryAttention writes in place), also when stepping from an older cache', async (engine) => {
    const a = await openDecoder(standard, { engine: 'ort' }); // the standard graph: Concat copies the cache
    const b = await openDecoder(genai, { engine });
    try {
      const [la, lb] = [await byWholeAndSteps(a, ids, chunks), await byWholeAndSteps(b, ids, chunks)];
      for (let i = 0; i < la.length; i++) expect(relativeDiff(la[i], lb[i])).toBeLessThan(1e-5);
      const first = await b.step!(ids.slice(0, 6));
      expect(first.cache.constructor.name).toBe('SharedKvCache');
      const ahead = await b.step!(ids.slice(6, 8), first.cache); // writes rows 6-7 into first's buffers
      // A branch from the older cache: its rows are copied to new buffers, the later step's rows are not seen.
      const branch = await b.step!(ids.slice(8, 9), first.cache);
      const plain = await a.step!(ids.slice(8, 9), (await a.step!(ids.slice(0, 6))).cache);
      expect(relativeDiff(plain.logits, branch.logits)).toBeLessThan(1e-5);
      const onward = await b.step!(ids.slice(8, 9), ahead.cache);
      const plainOnward = await a.logits([...ids.slice(0, 9)]);
      const lastRow = { ...plainOnward, seq: 1, data: plainOnward.data.subarray(8 * plainOnward.vocab) };
      expect(relativeDiff(lastRow, onward.logits)).toBeLessThan(1e-5);
    } finally {
      await a.release();
      await b.release();
    }
  }, 60_000);

  it('decodes greedily with the cache to the tokens of full recompute', async () => {
    const s = await openDecoder(genai, { engine: 'ort' });
    try {
      const seq = ids.slice(0, 4);
      let { logits, cache } = await s.step!(seq);
      const cached: number[] = [];
      for (let i = 0; i < 12; i++) {
        cached.push(argmax(logits));
        ({ logits, cache } = await s.step!([cached[i]], cache));
      }
      const recomputed: number[] = [];
      for (let i = 0; i < 12; i++) {
        const all = await s.logits([...seq, ...recomputed]);
        recomputed.push(argmax(all, all.seq - 1));
      }
      console.log(`genai layout greedy tokens: ${cached.join(' ')}`);
      expect(cached).toEqual(recomputed);
    } finally {
      await s.release();
    }
  }, 60_000);

  it('quantized with --format w4a8 runs W4A8MatMul in the addon\'s session next to the contrib ops, matching MatMulNBits on the same weights', async () => {
    const ours = path.join(dir, 'genai-w4a16.onnx'), theirs = path.join(dir, 'genai-nbits.onnx');
    quantize(genai, ours, 'w4a8', ['--no-fuse-decoder']);
    quantize(genai, theirs, 'matmulnbits');
    const graph = loadModel(ours).proto.graph!;
    expect(graph.node.filter((n) => n.opType === 'W4A8MatMul' && n.domain === 'com.w4a8').length).toBe(2 * 7); // quantize keeps lm_head in float
    expect(graph.node.filter((n) => n.opType === 'GroupQueryAttention').length).toBe(2);
    // com.w4a8 nodes: the w4a8 engine. Both dequantize the same int4 codes and multiply in float (MatMulNBits at accuracy level 0).
    await expectSameLogits(ours, theirs, ids, chunks, 1e-4);
  }, 120_000);

  // --format w4a8 fuses the GenAI layout too: each GroupQueryAttention becomes CachedAttention (position_ids
  // left out: derived from the mask), each norm an RmsNorm, q|k|v and gate|up one W4A8MatMul each. Both rotary
  // conventions: the model's interleaved pairs, and the same graph with rotary_interleaved = 0 (Hugging Face's
  // pairs, what GenAI exports of LLaMA use), which ORT's GroupQueryAttention computes unfused.
  it.each([1, 0])('quantized with --format w4a8, fuses GroupQueryAttention (rotary_interleaved %i) and the norms, with the unfused graph\'s logits', async (interleaved) => {
    // A copy with the rotary convention of this case.
    const m = loadModel(genai);
    for (const n of m.proto.graph!.node.filter((x) => x.opType === 'GroupQueryAttention')) {
      n.attribute.find((a) => a.name === 'rotary_interleaved')!.i = BigInt(interleaved);
    }
    const source = path.join(dir, `genai-rotary-${interleaved}.onnx`);
    saveModel(m, source, { externalData: 'never' });
    const fused = path.join(dir, `genai-fused-${interleaved}.onnx`), plain = path.join(dir, `genai-unfused-${interleaved}.onnx`);
    quantize(source, fused, 'w4a8');
    quantize(source, plain, 'w4a8', ['--no-fuse-decoder']);
    const graph = loadModel(fused).proto.graph!;
    const ops = (op: string) => graph.node.filter((n) => n.opType === op);
    expect(ops('CachedAttention')).toHaveLength(2);
    for (const n of ops('CachedAttention')) {
      expect(n.input[6]).toBe(''); // no position_ids
      expect(Number(n.attribute.find((a) => a.name === 'rotary_interleaved')!.i)).toBe(interleaved);
    }
    expect(ops('RmsNorm')).toHaveLength(5);
    expect(ops('W4A8MatMul')).toHaveLength(2 * 4); // q|k|v, o, gate|up (swiglu), down per layer
    for (const gone of ['GroupQueryAttention', 'SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'Sigmoid']) expect(ops(gone)).toHaveLength(0);
    // Float activations: the same products, summed in another order.
    await expectSameLogits(plain, fused, ids, chunks, 1e-5);
  }, 120_000);

  it('refuses a head size GroupQueryAttention cannot take, and an unknown layout', async () => {
    await expect(importRandomLlama('tiny-260k', path.join(dir, 'hs8'), { layers: 1, layout: 'genai' })).rejects.toThrow(/head size that is a multiple of 16 .*this model's is 8/);
    expect(fs.existsSync(path.join(dir, 'hs8', 'model.onnx'))).toBe(false);
    await expect(importRandomLlama('tiny-1m', path.join(dir, 'bad'), { layout: 'gqa' as never })).rejects.toThrow(/Expected layout to be one of standard, genai but received "gqa"/);
    const r = w4a8(['import', 'llama2c', '--random', 'tiny-1m', '--layout', 'onnx', '-o', path.join(dir, 'cli-bad')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/layout/);
  }, 60_000);
});
