// Correction and adapter terms fused in com.w4a8.W4A8MatMul, on stories260K:
// - quantize --format w4a8 --compensate lorc-aware|kron-aware puts the factors on the W4A8MatMul
//   nodes (inputs 5..8, no side branch) and its perplexity equals the sim export of the same
//   quantization and compensation within 0.05 %; with --compensate-factors int8 the low-rank pair
//   is int8 with row scales (inputs 5, 6, 9, 10), perplexity within 0.5 % of fp16 factors;
// - several adapters on one session (lib/export/adapter_slots.ts): the factors exposed as
//   overridable graph inputs, two random adapters fed run by run on one session give the logits of
//   two separately attached models, and a run without feeds gives the default's.
// Needs dist/ built and the addon (W4A8_ADDON).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { adapterFeeds, attachFusedFactors, exposeAdapterInputs, w4a8MatMulNodes, type FusedFactors } from '../../lib/export/adapter_slots';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { openW4A8Session, type EngineSession } from '../../lib/ort/engine_session';
import { assertBuiltCli } from '../helpers/built_cli';
import { decoderFeeds } from '../helpers/llama2c_feeds';
import { xorshift32 } from '../helpers/seeded';
import { SHARED_DIR } from '../helpers/shared_paths';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');
const DATA = path.join(SHARED_DIR, 'data', 'tinystories');
const EVAL_TEXT = path.join(DATA, 'eval-dev.txt');
const CALIB = path.join(DATA, 'calib.txt');

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const missing = [path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin'), EVAL_TEXT, CALIB].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`fused adapter tests skipped: missing ${missing.join(', ')}`);
beforeAll(assertBuiltCli);
const describeIf = missing.length === 0 ? describe : describe.skip;

describeIf('W4A8MatMul with fused correction / adapter terms on stories260K', () => {
  let dir: string;
  let fp32: string;
  let tokenizer: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-fused-'));
    const r = w4a8(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', dir, '--quiet']);
    if (r.status !== 0) throw new Error(`w4a8 import llama2c failed (${r.status}): ${r.stderr}`);
    fp32 = path.join(dir, 'model.onnx');
    tokenizer = path.join(dir, 'tok512.bin');
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function quantize(format: string, extra: string[], name: string): string {
    const out = path.join(dir, `${name}.onnx`);
    const r = w4a8(['quantize', fp32, '--format', format, '--group', '32', '--asym', '--aformat', 'int8', '--calib', CALIB, '--calib-tokens', '2048', ...extra, '-o', out, '--quiet']);
    if (r.status !== 0) throw new Error(`quantize --format ${format} ${extra.join(' ')} failed (${r.status}): ${r.stderr}`);
    return out;
  }
  function ppl(model: string, tokens: number): number {
    const r = w4a8(['eval', model, '--text', EVAL_TEXT, '--tokenizer', tokenizer, '--max-tokens', String(tokens), '--json', '--quiet']);
    if (r.status !== 0) throw new Error(`eval ${model} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout).ppl as number;
  }

  it.each([['lorc-aware', [5, 6]], ['kron-aware', [7, 8]]] as const)(
    '--compensate %s: factors on the W4A8MatMul nodes, perplexity equals the sim export within 0.05 %%',
    (method, positions) => {
      const args = ['--compensate', method, '--compensate-budget', '0.05'];
      const fused = quantize('w4a8', args, `w4a8-${method}`);
      const proto = loadModel(fused).proto;
      const nodes = proto.graph!.node.filter((n) => n.domain === 'com.w4a8' && n.opType === 'W4A8MatMul');
      // Nodes with correction factors are not merged (fuse_decoder.ts): one W4A8MatMul per layer.
      expect(nodes.length).toBe(35);
      const withFactors = nodes.filter((n) => positions.every((i) => (n.input[i] ?? '') !== ''));
      expect(withFactors.length).toBeGreaterThan(0);
      // No side branch: no standard MatMul reads a correction factor.
      const factorNames = new Set(withFactors.flatMap((n) => positions.map((i) => n.input[i])));
      expect(proto.graph!.node.filter((n) => n.domain !== 'com.w4a8' && n.input.some((i) => factorNames.has(i)))).toEqual([]);
      const tokens = 20000;
      const simPpl = ppl(quantize('sim', args, `sim-${method}`), tokens);
      const fusedPpl = ppl(fused, tokens);
      console.log(`stories260K rtn int4-asym g32 int8 + ${method} 5 %, ${tokens} tokens: sim ppl ${simPpl.toFixed(6)}, fused w4a8 ppl ${fusedPpl.toFixed(6)} ` +
        `(${((fusedPpl / simPpl - 1) * 100).toFixed(4)} %), ${withFactors.length} of ${nodes.length} nodes with factors`);
      expect(Math.abs(fusedPpl / simPpl - 1)).toBeLessThan(5e-4);
    },
    300_000,
  );

  it('--compensate-factors int8: int8 low-rank factors with row scales on W4A8MatMul (inputs 5, 6, 9, 10), perplexity next to fp16 factors', () => {
    const args = ['--compensate', 'lorc-aware', '--compensate-budget', '0.05'];
    const fp16Path = path.join(dir, 'w4a8-lorc-aware.onnx');
    const fp16 = fs.existsSync(fp16Path) ? fp16Path : quantize('w4a8', args, 'w4a8-lorc-aware');
    const int8 = quantize('w4a8', [...args, '--compensate-factors', 'int8'], 'w4a8-lorc-aware-int8');
    const proto = loadModel(int8).proto;
    const inits = new Map(proto.graph!.initializer.map((t) => [t.name, t]));
    const nodes = proto.graph!.node.filter((n) => n.domain === 'com.w4a8' && n.opType === 'W4A8MatMul' && (n.input[5] ?? '') !== '');
    expect(nodes.length).toBeGreaterThan(0);
    for (const n of nodes) {
      const [u, v, us, vs] = [5, 6, 9, 10].map((i) => inits.get(n.input[i])!);
      expect([u.dataType, v.dataType, us.dataType, vs.dataType]).toEqual([3, 3, 1, 1]); // INT8, INT8, FLOAT, FLOAT
      const k = Number(n.attribute.find((a) => a.name === 'K')!.i), nn = Number(n.attribute.find((a) => a.name === 'N')!.i);
      const r = Number(u.dims[0]);
      expect([u.dims.map(Number), v.dims.map(Number), us.dims.map(Number)]).toEqual([[r, k], [r, nn], [r]]);
    }
    const report = JSON.parse(fs.readFileSync(`${int8}.report.json`, 'utf8'));
    const layer = report.layers.find((l: { compensation?: { rank: number } }) => (l.compensation?.rank ?? 0) > 0);
    const fp16Layer = JSON.parse(fs.readFileSync(`${fp16}.report.json`, 'utf8')).layers.find((l: { name: string }) => l.name === layer.name);
    // 8-bit factors (plus two fp32 scales per rank) count fewer bits per weight than fp16 ones.
    expect(layer.bitsPerWeight).toBeLessThan(fp16Layer.bitsPerWeight);
    const tokens = 20000;
    const none = ppl(quantize('w4a8', [], 'w4a8-none'), tokens);
    const p16 = ppl(fp16, tokens), p8 = ppl(int8, tokens);
    console.log(`stories260K rtn int4-asym g32 int8 + lorc-aware 5 %, ${tokens} tokens, fused w4a8: no correction ${none.toFixed(4)}, fp16 factors ${p16.toFixed(4)}, ` +
      `int8 factors ${p8.toFixed(4)} (${((p8 / p16 - 1) * 100).toFixed(3)} % vs fp16)`);
    expect(Math.abs(p8 / p16 - 1)).toBeLessThan(5e-3);
    // Other formats keep fp16 factors: refused as a usage error.
    const r = w4a8(['quantize', fp32, '--format', 'sim', '--compensate', 'lorc', '--compensate-rank', '2', '--compensate-factors', 'int8', '-o', path.join(dir, 'bad.onnx'), '--quiet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--compensate-factors int8 is read by W4A8MatMul only: use --format w4a8/);
  }, 300_000);

  it('two adapters on one session give the logits of two separately attached models', async () => {
    const base = quantize('w4a8', [], 'w4a8-base');
    const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
    console.log(`adapter seed ${seed}`);
    const gen = xorshift32(seed);
    const next = () => gen() / 2 ** 32;
    // Random adapters on every W4A8MatMul: rank 4 low rank and a 2-term Kronecker sum.
    const baseModel = loadModel(base);
    const shapes = w4a8MatMulNodes(baseModel).map((n) => {
      const attr = (a: string) => Number(n.attribute.find((x) => x.name === a)!.i);
      return { name: n.name, k: attr('K'), n: attr('N') };
    });
    const rand = (count: number, scale: number) => Float32Array.from({ length: count }, () => (next() * 2 - 1) * scale);
    const split = (d: number) => { let a = 1; for (let f = 2; f * f <= d; f++) if (d % f === 0) a = f; return [a, d / a]; };
    const adapter = (): Map<string, FusedFactors> => new Map(shapes.map((s) => {
      const [k1, k2] = split(s.k), [n1, n2] = split(s.n);
      return [s.name, {
        lowRank: { rank: 4, u: rand(s.k * 4, 0.05), v: rand(4 * s.n, 0.05) },
        kron: { terms: 2, k1, n1, k2, n2, a: rand(2 * k1 * n1, 0.1), b: rand(2 * k2 * n2, 0.1) },
      }];
    }));
    const adapters = [adapter(), adapter()];
    const attach = (which: number): string => {
      const m = loadModel(base);
      for (const node of w4a8MatMulNodes(m)) attachFusedFactors(m, node, adapters[which].get(node.name)!, `${node.name}/adapter`);
      const out = path.join(dir, `attached-${which}.onnx`);
      saveModel(m, out);
      return out;
    };
    const attached = [attach(0), attach(1)];
    // The serving model: adapter 0 attached as the default, its factors exposed as inputs.
    const serving = loadModel(attached[0]);
    const slots = exposeAdapterInputs(serving);
    expect(slots.length).toBe(shapes.length);
    const servingPath = path.join(dir, 'serving.onnx');
    saveModel(serving, servingPath);

    const ids = [[1, 403, 407, 261, 378, 10, 13, 300]];
    // The cache shape from the model's past_key_values inputs ([batch, kv heads, past, head size]).
    const pastInputs = baseModel.proto.graph!.input.filter((v) => /^past_key_values\.\d+\.key$/.test(v.name));
    const tt = pastInputs[0].type!.value;
    if (tt.case !== 'tensorType') throw new Error('past_key_values.0.key is not a tensor');
    const pastDims = tt.value.shape!.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : 0));
    const feeds = decoderFeeds(ids, { layers: pastInputs.length, kvHeads: pastDims[1], headSize: pastDims[3] });
    const logits = async (s: EngineSession, extra: Record<string, ort.Tensor> = {}) =>
      Float32Array.from((await s.run({ ...feeds, ...extra }, ['logits'])).logits.data as Float32Array);
    const asTensors = (which: number) => Object.fromEntries(Object.entries(adapterFeeds(slots, adapters[which])).map(([name, f]) => [name, f.type === 'float16' ? new ort.Tensor('float16', f.data, f.dims) : new ort.Tensor('float32', f.data, f.dims)]));

    const sessions: EngineSession[] = [];
    try {
      const one = await openW4A8Session(servingPath);
      sessions.push(one);
      const separate = [await openW4A8Session(attached[0]), await openW4A8Session(attached[1])];
      sessions.push(...separate);
      const expected = [await logits(separate[0]), await logits(separate[1])];
      const plain = await openW4A8Session(base);
      sessions.push(plain);
      const none = await logits(plain);
      // Order: 1, 0, default, 1 — each switch run to run on the same session.
      const runs: [number, Float32Array][] = [[1, await logits(one, asTensors(1))], [0, await logits(one, asTensors(0))], [0, await logits(one)], [1, await logits(one, asTensors(1))]];
      for (const [which, got] of runs) {
        expect(got.length).toBe(expected[which].length);
        let maxDiff = 0;
        for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - expected[which][i]));
        expect(maxDiff).toBe(0);
      }
      // The adapters change the logits (the test is not comparing the base with itself).
      let moved = 0;
      for (let i = 0; i < none.length; i++) moved = Math.max(moved, Math.abs(none[i] - expected[0][i]), Math.abs(expected[1][i] - expected[0][i]));
      expect(moved).toBeGreaterThan(1e-3);
    } finally {
      for (const s of sessions) await s.release();
    }
  }, 180_000);
});
