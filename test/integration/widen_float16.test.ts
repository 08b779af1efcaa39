// fp16 graphs widened to fp32 for `--format w4a8` (lib/export/widen_float16.ts): a widened fp16
// decoder computes what the fp32 decoder of the same (fp16-rounded) weights computes, through
// onnxruntime-node and, fused, through the addon's session; Cast targets, constants, dtype
// attributes and subgraphs are widened too; and the CLI path on a random fp16 model. Needs dist/
// and the addon built.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { fuseDecoder } from '../../lib/export/fuse_decoder';
import { hasFloat16, widenFloat16 } from '../../lib/export/widen_float16';
import { GraphBuilder } from '../../lib/import/graph_builder';
import type { Llama2cConfig } from '../../lib/import/llama2c_checkpoint';
import { buildLlama2cModel } from '../../lib/import/llama2c_graph';
import { makeModel, makeNode, makeValueInfo, makeGraph } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, saveModel, type OnnxModel } from '../../lib/onnx/model';
import { makeTensor, replaceInitializer, tensorDims, tensorToFloat32 } from '../../lib/onnx/tensor';
import { float32ToHalves, halvesToFloat32 } from '../../lib/native/tensor_codecs';
import { openW4A8Session, ortEngineSession, type EngineSession } from '../../lib/ort/engine_session';
import { assertBuiltCli, runCli } from '../helpers/built_cli';
import { xorshift32 } from '../helpers/seeded';
import { SeededWeights } from '../helpers/seeded_llama2c';

beforeAll(assertBuiltCli);

const seed = Number(process.env.W4A8_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

function elemTypes(model: OnnxModel): number[] {
  const g = model.proto.graph!;
  return [...g.input, ...g.output].map((v) => (v.type?.value.case === 'tensorType' ? v.type.value.value.elemType : -1));
}

/** Tensor values as fp32, whatever the float type. */
function floats(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') return halvesToFloat32(t.data as Uint16Array, 'float16');
  throw new Error(`unexpected tensor type ${t.type}`);
}

/** max |a - b| <= tol * max |b|. */
function expectClose(what: string, a: ort.Tensor, b: ort.Tensor, tol: number): void {
  expect(a.dims).toEqual(b.dims);
  const x = floats(a), y = floats(b);
  let worst = 0, scale = 1e-6;
  for (let i = 0; i < x.length; i++) {
    expect(Number.isFinite(x[i])).toBe(true);
    worst = Math.max(worst, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  if (worst > tol * scale) throw new Error(`${what}: max |a - b| ${worst} against max |b| ${scale} (tolerance ${tol})`);
}

describe('a widened fp16 decoder', () => {
  const config: Llama2cConfig = {
    dim: 48, hiddenDim: 40, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 300, seqLen: 64,
    sharedClassifier: false, headSize: 8, kvDim: 16,
  };
  let dir: string;
  let half: EngineSession, widened: EngineSession, reference: EngineSession, fused: EngineSession;

  beforeAll(async () => {
    console.log(`widened fp16 decoder: seed ${seed} (W4A8_TEST_SEED=${seed} replays it)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-widen-'));
    const weights = new SeededWeights(config, seed);
    const fp16 = await buildLlama2cModel(weights, undefined, new GraphBuilder(undefined, 256, undefined, DataType.FLOAT16));
    saveModel(fp16, path.join(dir, 'fp16.onnx'), { externalData: 'never' });
    // The reference: the fp32 graph of the same values, i.e. every initializer the fp16 graph
    // narrowed rounded through fp16 the same way.
    const fp32 = await buildLlama2cModel(weights);
    const narrowed = new Map(fp16.proto.graph!.initializer.filter((t) => t.dataType === DataType.FLOAT16).map((t) => [t.name, t]));
    for (const t of [...fp32.proto.graph!.initializer]) {
      if (t.dataType !== DataType.FLOAT || !narrowed.has(t.name)) continue;
      const rounded = halvesToFloat32(float32ToHalves(tensorToFloat32(fp32, t), 'float16'), 'float16');
      replaceInitializer(fp32, makeTensor(t.name, DataType.FLOAT, tensorDims(t), rounded));
    }
    saveModel(fp32, path.join(dir, 'reference.onnx'), { externalData: 'never' });

    expect(hasFloat16(fp16)).toBe(true);
    const w = widenFloat16(fp16);
    // Inputs: 2 past tensors per layer; outputs: logits and 2 present tensors per layer.
    expect(w).toMatchObject({ gatherTables: 1, values: 4 * config.nLayers + 1 });
    expect(w.initializers).toBeGreaterThan(2 * config.nLayers);
    expect(hasFloat16(fp16)).toBe(false);
    expect(elemTypes(fp16)).not.toContain(DataType.FLOAT16);
    // Again: nothing left to do (the embedding's Cast is not doubled).
    const nodes = fp16.proto.graph!.node.length;
    expect(widenFloat16(fp16)).toEqual({ initializers: 0, gatherTables: 1, values: 0, attributes: 0 });
    expect(fp16.proto.graph!.node.length).toBe(nodes);
    // Only the token embedding stays fp16, read through Gather then a Cast.
    const kept = fp16.proto.graph!.initializer.filter((t) => t.dataType === DataType.FLOAT16);
    expect(kept.map((t) => tensorDims(t))).toEqual([[config.vocabSize, config.dim]]);
    const gather = fp16.proto.graph!.node.find((n) => n.opType === 'Gather' && n.input[0] === kept[0].name)!;
    const cast = fp16.proto.graph!.node.filter((n) => n.input[0] === gather.output[0]);
    expect(cast.map((n) => [n.opType, Number(n.attribute[0].i)])).toEqual([['Cast', DataType.FLOAT]]);
    saveModel(fp16, path.join(dir, 'widened.onnx'), { externalData: 'never' });

    expect(fuseDecoder(fp16)).toMatchObject({ attention: config.nLayers, attentionSkipped: 0, rmsNorm: 2 * config.nLayers + 1 });
    saveModel(fp16, path.join(dir, 'fused.onnx'), { externalData: 'never' });

    half = ortEngineSession(await ort.InferenceSession.create(path.join(dir, 'fp16.onnx')));
    widened = ortEngineSession(await ort.InferenceSession.create(path.join(dir, 'widened.onnx')));
    reference = ortEngineSession(await ort.InferenceSession.create(path.join(dir, 'reference.onnx')));
    fused = await openW4A8Session(path.join(dir, 'fused.onnx'));
  }, 60_000);
  afterAll(async () => {
    for (const s of [half, widened, reference, fused]) await s?.release();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const int64 = (v: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), dims);
  function feeds(ids: number[][], past: Record<string, ort.Tensor> | undefined, pastLen: number, type: 'float32' | 'float16'): Record<string, ort.Tensor> {
    const b = ids.length, seq = ids[0].length;
    const f: Record<string, ort.Tensor> = {
      input_ids: int64(ids.flat(), [b, seq]),
      attention_mask: int64(new Array<number>(b * (pastLen + seq)).fill(1), [b, pastLen + seq]),
      position_ids: int64(ids.flatMap(() => Array.from({ length: seq }, (_, i) => pastLen + i)), [b, seq]),
    };
    const empty = () => (type === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [b, config.nKvHeads, 0, config.headSize]) : new ort.Tensor('float32', new Float32Array(0), [b, config.nKvHeads, 0, config.headSize]));
    for (let l = 0; l < config.nLayers; l++)
      for (const kind of ['key', 'value']) f[`past_key_values.${l}.${kind}`] = past?.[`present.${l}.${kind}`] ?? empty();
    return f;
  }

  it('computes the fp32 decoder of the same fp16 values (prompt, then a step on the cache), fused or not, and stays near the fp16 graph', async () => {
    const rng = xorshift32(seed + 1);
    const tok = () => 3 + (rng() % (config.vocabSize - 3));
    const fetches = ['logits', ...Array.from({ length: config.nLayers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat()];
    const past: Record<string, Record<string, ort.Tensor> | undefined> = {};
    let pastLen = 0;
    for (const seq of [5, 1]) {
      const ids = [Array.from({ length: seq }, tok), Array.from({ length: seq }, tok)];
      const out: Record<string, Record<string, ort.Tensor>> = {};
      for (const [name, s] of [['half', half], ['widened', widened], ['reference', reference], ['fused', fused]] as const)
        out[name] = await s.run(feeds(ids, past[name], pastLen, name === 'half' ? 'float16' : 'float32'), fetches);
      for (const f of fetches) {
        expect(out.widened[f].type).toBe('float32');
        // Same graph, same values, same runtime: only ORT's own fp16 -> fp32 Cast of the embedding rows differs (exact).
        expectClose(`widened ${f} after ${pastLen} + ${seq}`, out.widened[f], out.reference[f], 1e-6);
        expectClose(`fused ${f} after ${pastLen} + ${seq}`, out.fused[f], out.reference[f], 2e-5);
        // The fp16 graph rounds every activation to 11 bits.
        expectClose(`fp16 graph ${f} after ${pastLen} + ${seq}`, out.half[f], out.widened[f], 2e-2);
      }
      for (const name of Object.keys(out)) past[name] = out[name];
      pastLen += seq;
    }
  }, 60_000);
});

describe('widenFloat16 on constants, Cast targets and subgraphs', () => {
  it('widens Constant, ConstantOfShape, Cast and an If branch, and the model computes the same', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-widen-ops-'));
    try {
      const h = (values: number[], dims: number[], name: string) => makeTensor(name, DataType.FLOAT16, dims, float32ToHalves(Float32Array.from(values), 'float16'));
      const branch = (label: string, add: number[]) =>
        makeGraph({
          name: label,
          nodes: [makeNode('Add', ['m', `${label}_c`], [`${label}_out`])],
          inputs: [],
          outputs: [makeValueInfo(`${label}_out`, DataType.FLOAT16, [2, 3])],
          initializers: [h(add, [3], `${label}_c`)],
        });
      const model = makeModel(
        {
          name: 'widen-ops',
          nodes: [
            makeNode('Cast', ['x'], ['x16'], { to: DataType.FLOAT16 }),
            makeNode('Constant', [], ['c'], { value: h([0.5, -1.25, 2], [3], 'c_value') }),
            makeNode('Add', ['x16', 'c'], ['a']),
            makeNode('ConstantOfShape', ['shape'], ['half'], { value: h([0.75], [1], 'half_value') }),
            makeNode('Mul', ['a', 'half'], ['m']),
            makeNode('If', ['cond'], ['y'], { then_branch: branch('then', [1, 2, 3]), else_branch: branch('else', [-3, 0.25, 8]) }),
          ],
          inputs: [makeValueInfo('x', DataType.FLOAT, [2, 3]), makeValueInfo('cond', DataType.BOOL, [])],
          outputs: [makeValueInfo('y', DataType.FLOAT16, [2, 3])],
          initializers: [makeTensor('shape', DataType.INT64, [2], BigInt64Array.from([2n, 3n]))],
          valueInfo: [makeValueInfo('a', DataType.FLOAT16, [2, 3])],
        },
        [{ domain: '', version: 17 }],
        { dir },
      );
      saveModel(model, path.join(dir, 'fp16.onnx'), { externalData: 'never' });
      const w = widenFloat16(model);
      // 3 attributes (Cast's to, the two constant tensors), 2 branch initializers, y + a + 2 branch outputs.
      expect(w).toEqual({ initializers: 2, gatherTables: 0, values: 4, attributes: 3 });
      saveModel(model, path.join(dir, 'widened.onnx'), { externalData: 'never' });
      const before = await ort.InferenceSession.create(path.join(dir, 'fp16.onnx'));
      const after = await ort.InferenceSession.create(path.join(dir, 'widened.onnx'));
      try {
        const x = new ort.Tensor('float32', Float32Array.from([0.25, -2, 3.5, 1, 0.125, -0.5]), [2, 3]);
        for (const cond of [true, false]) {
          const feeds = { x, cond: new ort.Tensor('bool', Uint8Array.from([cond ? 1 : 0]), []) };
          const y0 = (await before.run(feeds)).y, y1 = (await after.run(feeds)).y;
          expect(y0.type).toBe('float16');
          expect(y1.type).toBe('float32');
          // Every value here is exact in fp16 (halves and quarters): both give the same numbers.
          expect(Array.from(floats(y1))).toEqual(Array.from(floats(y0)));
        }
      } finally {
        await before.release();
        await after.release();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves an fp32 model as it is', async () => {
    const model = await buildLlama2cModel(new SeededWeights({ dim: 32, hiddenDim: 24, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 64, seqLen: 16, sharedClassifier: false, headSize: 8, kvDim: 32 }, 5));
    expect(hasFloat16(model)).toBe(false);
    const nodes = model.proto.graph!.node.length;
    expect(widenFloat16(model)).toEqual({ initializers: 0, gatherTables: 0, values: 0, attributes: 0 });
    expect(model.proto.graph!.node.length).toBe(nodes);
  });
});

describe('quantize --format w4a8 on an fp16 model', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-widen-cli-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const layout of ['standard', 'genai']) {
    it(`widens and fuses the ${layout} layout, and --no-widen-fp16 keeps it fp16 and unfused; both generate with the cache as without`, () => {
      const src = path.join(dir, layout);
      let r = runCli(['import', 'llama2c', '--random', 'tiny-1m', '--dtype', 'float16', '--layout', layout, '--seed', '7', '-o', src, '--quiet']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const wide = path.join(dir, `${layout}-w4a8.onnx`), kept = path.join(dir, `${layout}-w4a8-fp16.onnx`);
      r = runCli(['quantize', path.join(src, 'model.onnx'), '--format', 'w4a8', '--group', '32', '-o', wide, '--json', '--quiet']);
      expect(r.status).toBe(0);
      const notes: string[] = JSON.parse(r.stdout).export.notes;
      expect(notes.join('\n')).toMatch(/fp16 graph widened to fp32.*1 embedding table\(s\) stay fp16/);
      expect(notes.join('\n')).toMatch(/decoder fused: 4 attention block\(s\)/);
      const model = loadModel(wide);
      expect(elemTypes(model)).not.toContain(DataType.FLOAT16);
      expect(new Set(model.proto.graph!.node.map((n) => n.opType))).toEqual(new Set(['Gather', 'Cast', 'RmsNorm', 'CachedAttention', 'W4A8MatMul', 'MatMul'])); // MatMul: the LM head, kept in float

      r = runCli(['quantize', path.join(src, 'model.onnx'), '--format', 'w4a8', '--group', '32', '--no-widen-fp16', '-o', kept, '--json', '--quiet']);
      expect(r.status).toBe(0);
      expect((JSON.parse(r.stdout).export.notes as string[]).join('\n')).toMatch(/kept fp16 \(--no-widen-fp16\).*\n.*decoder not fused/);
      expect(elemTypes(loadModel(kept))).toContain(DataType.FLOAT16);

      for (const m of [wide, kept]) {
        const ids = (extra: string[]) => {
          const g = runCli(['generate', m, '--prompt', 'a', '--max-new-tokens', '12', '--json', '--quiet', ...extra]);
          if (g.status !== 0) throw new Error(`generate ${m} failed (${g.status}): ${g.stderr}`);
          return JSON.parse(g.stdout).ids as number[];
        };
        const cached = ids([]);
        expect(cached.length).toBeGreaterThan(12);
        expect(ids(['--no-kv-cache'])).toEqual(cached);
      }
    }, 120_000);
  }
});
