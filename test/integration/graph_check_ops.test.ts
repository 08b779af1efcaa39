// The per-op rules of the graph check (lib/onnx/op_rules.ts) against ONNX Runtime itself:
// - every model in ../shared/models, stories260K imported, and our exports of it (matmulnbits, qdq,
//   sim, w4a8) pass the check;
// - op-level mutants (op swaps, an input or output added or dropped, an initializer's type or rank
//   changed with its data size kept) are never refused by us when ORT loads them (seeded; the seed
//   is printed, W4A8_TEST_SEED replays it), and the faults the rules name are refused by both.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { checkModelGraph } from '../../lib/onnx/graph_check';
import { ONNX_OP_NAMES, OP_RULES } from '../../lib/onnx/op_rules';
import { importLlama2c } from '../../lib/import/llama2c';
import { quantizeModel } from '../../lib/pipeline/quantize';
import { writeToyLm } from '../helpers/quant_fixtures';
import { rng, sharedOnnxModels, tempDir } from '../helpers/onnx_fixtures';
import { SHARED_DIR } from '../helpers/shared_paths';

const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');

async function ortVerdict(file: string): Promise<string | undefined> {
  try {
    const s = await ort.InferenceSession.create(file, { logSeverityLevel: 4 });
    await s.release();
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

function ourVerdict(proto: ModelProto): string | undefined {
  try {
    checkModelGraph(proto, 'm');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('graph check: per-op rules against ONNX Runtime', () => {
  let dir: string;
  const models: string[] = [];
  beforeAll(async () => {
    dir = tempDir('graph-ops');
    models.push(writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: false, dim: 32, seed: 3 }));
    models.push(writeToyLm(path.join(dir, 'toy16'), { dtype: 'float16', external: true, dim: 32, seed: 5 }));
    if (fs.existsSync(path.join(STORIES, 'stories260K.bin'))) {
      await importLlama2c(path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin'), path.join(dir, 'stories'));
      models.push(path.join(dir, 'stories', 'model.onnx'));
    } else {
      console.warn(`stories260K part skipped: ${STORIES} missing`);
    }
    const source = models[models.length - 1];
    for (const format of ['matmulnbits', 'qdq', 'sim', 'w4a8'] as const) {
      const out = path.join(dir, `q-${format}`, 'model.onnx');
      await quantizeModel({ input: source, output: out, method: 'rtn', wformat: 'int4', groupSize: 32, format, aformat: format === 'qdq' ? 'none' : 'int8' });
      models.push(out);
    }
  }, 240_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('every op with rules is a known ai.onnx op', () => {
    expect(Object.keys(OP_RULES).filter((op) => !ONNX_OP_NAMES.has(op))).toEqual([]);
  });

  it('passes every shared model, stories260K imported and our exports of it', async () => {
    const all = [...sharedOnnxModels(), ...models];
    console.log(`graph check on ${all.length} models`);
    for (const file of all) {
      const proto = fromBinary(ModelProtoSchema, fs.readFileSync(file));
      expect({ file, ours: ourVerdict(proto) }).toEqual({ file, ours: undefined });
      // The standard-op ones load in the ORT of onnxruntime-node (w4a8 nodes need the addon's session).
      if (!file.includes('q-w4a8')) expect({ file, ort: await ortVerdict(file) }).toEqual({ file, ort: undefined });
    }
  }, 120_000);

  it.each([
    ['MatMul -> Conv (a rank-2 weight)', 'MatMul', 'Conv', /Conv needs rank at least 3 there/],
    ['MatMul -> Gemm (a rank-3 activation)', 'MatMul', 'Gemm', /Gemm needs rank 2 there/],
    ['MatMul -> an op ai.onnx lacks', 'MatMul', 'NoSuchOp', /uses op "NoSuchOp", which the ai.onnx domain does not define/],
    ['MatMul -> Softmax with two inputs', 'MatMul', 'Softmax', /has 2 inputs; Softmax \(opset \d+\) takes 1/],
    ['Mul -> Concat without its axis', 'Mul', 'Concat', /lacks its required attribute "axis"/],
  ])('%s: both refuse', async (_name, from, to, message) => {
    const bytes = fs.readFileSync(models[0]);
    const proto = fromBinary(ModelProtoSchema, bytes);
    const node = proto.graph!.node.find((n) => n.opType === from)!;
    node.opType = to;
    const file = path.join(dir, 'toy', 'mutant.onnx');
    fs.writeFileSync(file, toBinary(ModelProtoSchema, proto));
    expect(ourVerdict(proto)).toMatch(message);
    expect(await ortVerdict(file)).toBeDefined();
  });

  it('a float16 weight relabelled bfloat16 (same size) is refused by both: one MatMul, two element types', async () => {
    const proto = fromBinary(ModelProtoSchema, fs.readFileSync(models[1]));
    const mm = proto.graph!.node.find((n) => n.opType === 'MatMul')!;
    const w = proto.graph!.initializer.find((t) => t.name === mm.input[1])!;
    w.dataType = 16; // BFLOAT16
    const file = path.join(dir, 'toy16', 'mutant.onnx');
    fs.writeFileSync(file, toBinary(ModelProtoSchema, proto));
    expect(ourVerdict(proto)).toMatch(/needs one element type for inputs .* they are FLOAT16 and BFLOAT16/);
    expect(await ortVerdict(file)).toBeDefined();
  });

  it('never refuses an op-level mutant that ORT loads (seeded)', async () => {
    const seed = Number(process.env.W4A8_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`graph_check_ops mutants: seed ${seed} (W4A8_TEST_SEED=${seed} replays it)`);
    const r = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    const ops = [...Object.keys(OP_RULES), 'NoSuchOp', 'Resize', 'Attention', ''];
    const sameSize: Record<number, number[]> = { 1: [6, 12], 10: [16, 4, 5], 6: [1, 12], 7: [11, 13], 9: [2, 3] };
    const counts = { agree: 0, wrongRefusals: [] as string[], missed: 0 };
    const bases = models.filter((m) => !m.includes('q-w4a8'));
    for (let i = 0; i < 120; i++) {
      const base = pick(bases);
      const proto = fromBinary(ModelProtoSchema, fs.readFileSync(base));
      const g = proto.graph!;
      const node = pick(g.node);
      const kind = r();
      let what: string;
      if (kind < 0.55) {
        what = `${node.opType} -> ${(node.opType = pick(ops))}`;
        node.domain = '';
      } else if (kind < 0.65) {
        node.input.push(r() < 0.5 ? '' : node.input[0]);
        what = `${node.opType}: one more input`;
      } else if (kind < 0.75) {
        node.input.pop();
        what = `${node.opType}: one input fewer`;
      } else if (kind < 0.8) {
        node.output.push(`extra_${i}`);
        what = `${node.opType}: one more output`;
      } else {
        const t = pick(g.initializer);
        if (r() < 0.5) {
          const old = t.dataType;
          t.dataType = pick(sameSize[old] ?? [1]);
          what = `initializer ${t.name}: type ${old} -> ${t.dataType}`;
        } else {
          const count = t.dims.reduce((a, b) => a * b, 1n);
          t.dims = pick([[count], [1n, ...t.dims], [...t.dims, 1n], ...(count === 1n ? [[]] : [])]);
          what = `initializer ${t.name}: dims [${t.dims.join(', ')}]`;
        }
      }
      const file = path.join(path.dirname(base), 'mutant.onnx');
      fs.writeFileSync(file, toBinary(ModelProtoSchema, proto));
      const ours = ourVerdict(proto);
      const theirs = await ortVerdict(file);
      if (ours !== undefined && theirs === undefined) counts.wrongRefusals.push(`${path.basename(path.dirname(base))}: ${what}: ${ours}`);
      else if (ours === undefined && theirs !== undefined) counts.missed++;
      else counts.agree++;
    }
    // "missed": ORT refuses what only its shape inference finds (dims that do not match); those
    // mutants are refused when ORT opens them, and the fuzz test checks quantize never passes one on.
    console.log(`graph_check_ops mutants: agree ${counts.agree}, missed ${counts.missed}, wrong refusals ${counts.wrongRefusals.length}`);
    expect(counts.wrongRefusals).toEqual([]);
  }, 180_000);
});
