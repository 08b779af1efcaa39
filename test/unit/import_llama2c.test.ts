// importLlama2c on small synthetic checkpoints: ONNX Runtime's logits must match a plain port of
// llama2.c's run.c `forward` (the oracle below, float64), and bad inputs must fail clearly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { importLlama2c } from '../../lib/import/llama2c';
import { LM_HEAD_NAME } from '../../lib/import/llama2c_graph';
import { loadModel } from '../../lib/onnx/model';
import { findTokenizerBeside, loadTokenizer } from '../../lib/tokenize/load';
import { W4A8Error } from '../../lib/util/errors';
import { decoderFeeds, pastFrom, type DecoderShape } from '../helpers/llama2c_feeds';

interface Config {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  shared: boolean;
}

interface Weights {
  emb: Float32Array;
  rmsAtt: Float32Array[];
  wq: Float32Array[];
  wk: Float32Array[];
  wv: Float32Array[];
  wo: Float32Array[];
  rmsFfn: Float32Array[];
  w1: Float32Array[];
  w2: Float32Array[];
  w3: Float32Array[];
  rmsFinal: Float32Array;
  wcls: Float32Array;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomWeights(c: Config, seed: number): Weights {
  const r = rng(seed);
  const rand = (n: number, scale: number, offset = 0): Float32Array => Float32Array.from({ length: n }, () => offset + (r() * 2 - 1) * scale);
  const perLayer = (n: number, scale: number, offset = 0): Float32Array[] => Array.from({ length: c.layers }, () => rand(n, scale, offset));
  const kvDim = (c.dim * c.kvHeads) / c.heads;
  const emb = rand(c.vocab * c.dim, 1);
  return {
    emb,
    rmsAtt: perLayer(c.dim, 0.3, 1),
    wq: perLayer(c.dim * c.dim, 0.4),
    wk: perLayer(kvDim * c.dim, 0.4),
    wv: perLayer(kvDim * c.dim, 0.4),
    wo: perLayer(c.dim * c.dim, 0.4),
    rmsFfn: perLayer(c.dim, 0.3, 1),
    w1: perLayer(c.hidden * c.dim, 0.4),
    w2: perLayer(c.dim * c.hidden, 0.4),
    w3: perLayer(c.hidden * c.dim, 0.4),
    rmsFinal: rand(c.dim, 0.3, 1),
    wcls: c.shared ? emb : rand(c.vocab * c.dim, 1),
  };
}

/** The checkpoint bytes in llama2.c legacy order; the freq_cis tables hold noise (run.c skips them). */
function checkpointBytes(c: Config, w: Weights): Buffer {
  const header = Buffer.alloc(28);
  [c.dim, c.hidden, c.layers, c.heads, c.kvHeads, c.shared ? c.vocab : -c.vocab, c.seqLen].forEach((v, i) => header.writeInt32LE(v, i * 4));
  const headSize = c.dim / c.heads;
  const noise = rng(99);
  const freq = Float32Array.from({ length: c.seqLen * (headSize / 2) }, () => noise());
  const parts: Float32Array[] = [w.emb, ...w.rmsAtt, ...w.wq, ...w.wk, ...w.wv, ...w.wo, ...w.rmsFfn, ...w.w1, ...w.w2, ...w.w3, w.rmsFinal, freq, freq];
  if (!c.shared) parts.push(w.wcls);
  return Buffer.concat([header, ...parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))]);
}

/** A llama2.c tokenizer file with `vocab` entries. */
function tokenizerBytes(vocab: number): Buffer {
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ' ', ...Array.from({ length: vocab - 4 }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(1 + Math.floor(i / 26)))];
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0].writeInt32LE(Math.max(...pieces.map((p) => p.length)));
  pieces.forEach((p, i) => {
    const e = Buffer.alloc(8);
    e.writeFloatLE(-i, 0);
    e.writeInt32LE(Buffer.byteLength(p), 4);
    parts.push(e, Buffer.from(p));
  });
  return Buffer.concat(parts);
}

/** run.c `forward`, one position at a time with a KV cache, in float64. Returns logits per position. */
function referenceForward(c: Config, w: Weights, tokens: number[]): Float64Array[] {
  const hs = c.dim / c.heads;
  const kvDim = (c.dim * c.kvHeads) / c.heads;
  const kvMul = c.heads / c.kvHeads;
  const matvec = (m: Float32Array, x: ArrayLike<number>, rows: number, cols: number): Float64Array => {
    const out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += m[i * cols + j] * x[j];
      out[i] = s;
    }
    return out;
  };
  const rmsnorm = (x: Float64Array, weight: Float32Array): Float64Array => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + 1e-5);
    return x.map((v, j) => weight[j] * v * inv);
  };
  const keyCache: Float64Array[][] = Array.from({ length: c.layers }, () => []);
  const valueCache: Float64Array[][] = Array.from({ length: c.layers }, () => []);
  const result: Float64Array[] = [];
  tokens.forEach((token, pos) => {
    const x = Float64Array.from(w.emb.subarray(token * c.dim, (token + 1) * c.dim));
    for (let l = 0; l < c.layers; l++) {
      const xb = rmsnorm(x, w.rmsAtt[l]);
      const q = matvec(w.wq[l], xb, c.dim, c.dim);
      const k = matvec(w.wk[l], xb, kvDim, c.dim);
      const v = matvec(w.wv[l], xb, kvDim, c.dim);
      for (let i = 0; i < c.dim; i += 2) {
        const freq = 1 / Math.pow(10000, (i % hs) / hs);
        const fcr = Math.cos(pos * freq);
        const fci = Math.sin(pos * freq);
        for (const vec of i < kvDim ? [q, k] : [q]) {
          const v0 = vec[i];
          const v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      keyCache[l].push(k);
      valueCache[l].push(v);
      const out = new Float64Array(c.dim);
      for (let h = 0; h < c.heads; h++) {
        const kvOff = Math.floor(h / kvMul) * hs;
        const att = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i] * keyCache[l][t][kvOff + i];
          att[t] = s / Math.sqrt(hs);
        }
        const max = Math.max(...att);
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += att[t] = Math.exp(att[t] - max);
        for (let t = 0; t <= pos; t++) {
          for (let i = 0; i < hs; i++) out[h * hs + i] += (att[t] / sum) * valueCache[l][t][kvOff + i];
        }
      }
      const o = matvec(w.wo[l], out, c.dim, c.dim);
      for (let i = 0; i < c.dim; i++) x[i] += o[i];
      const xf = rmsnorm(x, w.rmsFfn[l]);
      const h1 = matvec(w.w1[l], xf, c.hidden, c.dim);
      const h3 = matvec(w.w3[l], xf, c.hidden, c.dim);
      const g = h1.map((val, i) => (val / (1 + Math.exp(-val))) * h3[i]);
      const down = matvec(w.w2[l], g, c.dim, c.hidden);
      for (let i = 0; i < c.dim; i++) x[i] += down[i];
    }
    result.push(matvec(w.wcls, rmsnorm(x, w.rmsFinal), c.vocab, c.dim));
  });
  return result;
}

function shapeOf(c: Config): DecoderShape {
  return { layers: c.layers, kvHeads: c.kvHeads, headSize: c.dim / c.heads };
}

async function runLogits(modelPath: string, batch: number[][], c: Config): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(modelPath);
  const out = await session.run(decoderFeeds(batch, shapeOf(c)));
  const logits = out.logits;
  await session.release();
  return { data: logits.data as Float32Array, dims: logits.dims };
}

describe('importLlama2c', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-import-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const base: Config = { dim: 16, hidden: 40, layers: 2, heads: 4, kvHeads: 2, vocab: 32, seqLen: 12, shared: true };

  function write(name: string, c: Config, seed: number): { ckpt: string; tok: string; weights: Weights } {
    const weights = randomWeights(c, seed);
    const ckpt = path.join(dir, `${name}.bin`);
    const tok = path.join(dir, `tok${c.vocab}.bin`);
    fs.writeFileSync(ckpt, checkpointBytes(c, weights));
    fs.writeFileSync(tok, tokenizerBytes(c.vocab));
    return { ckpt, tok, weights };
  }

  test.each([
    ['GQA, shared classifier', base, 7],
    ['GQA, separate classifier', { ...base, shared: false }, 8],
    ['multi-head (kv = heads)', { ...base, kvHeads: 4 }, 9],
  ] as [string, Config, number][])('ORT logits match run.c forward: %s', async (name, c, seed) => {
    const { ckpt, tok, weights } = write(name.replace(/\W+/g, '_'), c, seed);
    const out = path.join(dir, `out_${seed}`);
    const result = await importLlama2c(ckpt, tok, out);
    expect(result.modelPath).toBe(path.join(out, 'model.onnx'));
    expect(result.config).toMatchObject({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: c.kvHeads, vocabSize: 32, sharedClassifier: c.shared });

    const r = rng(seed + 1000);
    // Two sequences in one batch, the second as long as the model allows.
    const lengths = [7, c.seqLen];
    for (const len of lengths) {
      const batch = [0, 1].map(() => Array.from({ length: len }, () => Math.floor(r() * c.vocab)));
      const { data, dims } = await runLogits(result.modelPath, batch, c);
      expect(Array.from(dims)).toEqual([2, len, c.vocab]);
      let maxErr = 0;
      batch.forEach((tokens, b) => {
        referenceForward(c, weights, tokens).forEach((row, pos) => {
          const off = (b * len + pos) * c.vocab;
          for (let v = 0; v < c.vocab; v++) maxErr = Math.max(maxErr, Math.abs(data[off + v] - row[v]));
        });
      });
      expect(maxErr).toBeLessThan(1e-4);
    }
  });

  test.each([
    ['GQA', base, 21],
    ['multi-head (kv = heads)', { ...base, kvHeads: 4 }, 22],
  ] as [string, Config, number][])('KV cache: a prefill then one token per step gives run.c forward at every position (%s, batch 2)', async (name, c, seed) => {
    console.log(`seed ${seed}`);
    const { ckpt, tok, weights } = write(`kv_${name.replace(/\W+/g, '_')}`, c, seed);
    const result = await importLlama2c(ckpt, tok, path.join(dir, `kv_out_${seed}`));
    const r = rng(seed + 1000);
    const batch = [0, 1].map(() => Array.from({ length: c.seqLen }, () => Math.floor(r() * c.vocab)));
    const refs = batch.map((tokens) => referenceForward(c, weights, tokens));
    const session = await ort.InferenceSession.create(result.modelPath);
    try {
      const prefill = 5;
      let out = await session.run(decoderFeeds(batch.map((t) => t.slice(0, prefill)), shapeOf(c)));
      expect(Array.from(out['present.0.key'].dims)).toEqual([2, c.kvHeads, prefill, c.dim / c.heads]);
      let maxErr = 0;
      const compare = (logits: Float32Array, seq: number, first: number) => {
        for (let b = 0; b < 2; b++) {
          for (let p = 0; p < seq; p++) {
            const row = refs[b][first + p];
            for (let v = 0; v < c.vocab; v++) maxErr = Math.max(maxErr, Math.abs(logits[(b * seq + p) * c.vocab + v] - row[v]));
          }
        }
      };
      compare(out.logits.data as Float32Array, prefill, 0);
      for (let pos = prefill; pos < c.seqLen; pos++) {
        out = await session.run(decoderFeeds(batch.map((t) => [t[pos]]), shapeOf(c), pastFrom(out, pos)));
        expect(Array.from(out.logits.dims)).toEqual([2, 1, c.vocab]);
        expect(Array.from(out['present.1.value'].dims)).toEqual([2, c.kvHeads, pos + 1, c.dim / c.heads]);
        compare(out.logits.data as Float32Array, 1, pos);
      }
      expect(maxErr).toBeLessThan(1e-4);
    } finally {
      await session.release();
    }
  });

  test('the model: opset 17 standard ops, [K, N] MatMul weights, a recognisable output head, tokenizer beside it', async () => {
    const { ckpt, tok } = write('structure', base, 11);
    const out = path.join(dir, 'structure');
    const result = await importLlama2c(ckpt, tok, out);
    const model = loadModel(result.modelPath);
    const graph = model.proto.graph!;
    expect(model.proto.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(graph.node.every((n) => n.domain === '' && n.name !== '')).toBe(true);
    expect(new Set(graph.node.map((n) => n.name)).size).toBe(graph.node.length);
    const inits = new Map(graph.initializer.map((t) => [t.name, t.dims.map(Number)]));
    const weightMatMuls = graph.node.filter((n) => n.opType === 'MatMul' && inits.has(n.input[1]));
    // 7 linear layers per layer plus the head.
    expect(weightMatMuls.length).toBe(base.layers * 7 + 1);
    expect(inits.get('layers.0.attn.q_proj.weight')).toEqual([16, 16]);
    expect(inits.get('layers.1.attn.k_proj.weight')).toEqual([16, 8]);
    expect(inits.get('layers.0.mlp.gate_proj.weight')).toEqual([16, 40]);
    expect(inits.get('layers.0.mlp.down_proj.weight')).toEqual([40, 16]);
    const head = graph.node.find((n) => n.output.includes('logits'))!;
    expect(head.opType).toBe('MatMul');
    expect(head.input[1]).toBe(LM_HEAD_NAME);
    expect(inits.get(LM_HEAD_NAME)).toEqual([16, 32]);
    const input = graph.input.find((i) => i.name === 'input_ids')!;
    const dims = input.type?.value.case === 'tensorType' ? input.type.value.value.shape?.dim.map((d) => d.value.case) : [];
    expect(dims).toEqual(['dimParam', 'dimParam']);
    // input_ids, attention_mask, position_ids and a key and a value per layer; logits and a key and a value per layer.
    expect(graph.input.map((i) => i.name)).toEqual([
      'input_ids',
      'attention_mask',
      'position_ids',
      ...Array.from({ length: base.layers }, (_, l) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`]).flat(),
    ]);
    expect(graph.output.map((o) => o.name)).toEqual(['logits', ...Array.from({ length: base.layers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat()]);
    // The tokenizer keeps its name and is found beside the model.
    expect(result.tokenizerPath).toBe(path.join(out, 'tok32.bin'));
    expect(findTokenizerBeside(result.modelPath)).toBe(result.tokenizerPath);
    expect(loadTokenizer(result.tokenizerPath).vocabSize).toBe(32);
  });

  test('a truncated or padded checkpoint is refused with the expected size', async () => {
    const { ckpt, tok } = write('cut', base, 12);
    const bytes = fs.readFileSync(ckpt);
    const cut = path.join(dir, 'cut_short.bin');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 4));
    const out = path.join(dir, 'cut_out');
    await expect(importLlama2c(cut, tok, out)).rejects.toThrow(W4A8Error);
    await expect(importLlama2c(cut, tok, out)).rejects.toThrow(new RegExp(`truncated: ${bytes.length - 4} bytes.*has ${bytes.length}`));
    const padded = path.join(dir, 'padded.bin');
    fs.writeFileSync(padded, Buffer.concat([bytes, Buffer.alloc(4)]));
    await expect(importLlama2c(padded, tok, out)).rejects.toThrow(/longer than its header/);
    expect(fs.existsSync(path.join(out, 'model.onnx'))).toBe(false);
  });

  test('a header that is not llama2.c, a missing file, and a tokenizer of the wrong size are refused', async () => {
    const { ckpt } = write('tokcheck', base, 13);
    const wrongTok = path.join(dir, 'tok31.bin');
    fs.writeFileSync(wrongTok, tokenizerBytes(31));
    const out = path.join(dir, 'tok_out');
    await expect(importLlama2c(ckpt, wrongTok, out)).rejects.toThrow(/has 31 tokens but checkpoint .* has vocab_size 32/);
    expect(fs.existsSync(path.join(out, 'model.onnx'))).toBe(false);
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, Buffer.alloc(64, 0xff));
    await expect(importLlama2c(junk, path.join(dir, 'tok32.bin'), out)).rejects.toThrow(/not a llama2.c legacy checkpoint/);
    const v1 = Buffer.alloc(256);
    v1.writeUInt32LE(0x616b3432, 0);
    v1.writeInt32LE(1, 4);
    fs.writeFileSync(junk, v1);
    await expect(importLlama2c(junk, path.join(dir, 'tok32.bin'), out)).rejects.toThrow(/version 1 export .* --version 0/);
    await expect(importLlama2c(path.join(dir, 'absent.bin'), path.join(dir, 'tok32.bin'), out)).rejects.toThrow(/cannot open checkpoint/);
    await expect(importLlama2c(ckpt, path.join(dir, 'absent_tok.bin'), out)).rejects.toThrow(/cannot read tokenizer/);
  });
});
