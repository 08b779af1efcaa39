// Shared pieces for the ONNX I/O tests: where the real models are, seeded random feeds built
// from a session's declared inputs, and a tiny model with float weights of a chosen type.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import type { OnnxModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { SHARED_DIR } from './shared_paths';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const SHARED_MODELS = process.env.W4A8_SHARED_MODELS ?? path.join(SHARED_DIR, 'models');
export const PAST_ONNX = path.join(SHARED_MODELS, 'tiny-random-gpt2-fp32', 'past.onnx');

/** Every .onnx file under the shared models folder. */
export function sharedOnnxModels(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith('.onnx')) found.push(p);
    }
  };
  walk(SHARED_MODELS);
  return found.sort();
}

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `w4a8-${tag}-`));
}

/** A small deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomFloats(count: number, seed: number, scale = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

const DIMS = { batch: 1, seq: 3, past: 2 };

/** Resolves a symbolic dim by its name: batch -> 1, past -> 2, total -> seq + past, else seq. */
function dimValue(d: number | string): number {
  if (typeof d === 'number' && d >= 0) return d;
  const name = String(d).toLowerCase();
  if (name.includes('batch')) return DIMS.batch;
  if (name.includes('past')) return DIMS.past;
  if (name.includes('total')) return DIMS.seq + DIMS.past;
  return DIMS.seq;
}

/**
 * Random feeds for every declared input: ids in [0, 32), masks of ones, positions counting on
 * from the past length, floats in [-1, 1). Deterministic for a given seed.
 */
export function feedsFor(session: ort.InferenceSession, seed: number): Record<string, ort.Tensor> {
  const next = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) throw new Error(`input ${meta.name} is not a tensor`);
    const shape = meta.shape.map(dimValue);
    const count = shape.reduce((a, b) => a * b, 1);
    const name = meta.name.toLowerCase();
    const ints = (f: (i: number) => number): number[] => Array.from({ length: count }, (_, i) => f(i));
    const intValues = name.includes('mask') ? ints(() => 1) : name.includes('position') ? ints((i) => DIMS.past + (i % shape[shape.length - 1])) : ints(() => Math.floor(next() * 32));
    switch (meta.type) {
      case 'int32':
        feeds[meta.name] = new ort.Tensor('int32', Int32Array.from(intValues), shape);
        break;
      case 'int64':
        feeds[meta.name] = new ort.Tensor('int64', BigInt64Array.from(intValues.map(BigInt)), shape);
        break;
      case 'float32':
        feeds[meta.name] = new ort.Tensor('float32', Float32Array.from({ length: count }, () => next() * 2 - 1), shape);
        break;
      default:
        throw new Error(`feedsFor: input ${meta.name} has type ${meta.type}, which this helper does not fill`);
    }
  }
  return feeds;
}

/** Runs a session on the feeds and returns each output's data as a plain array (for toEqual). */
export async function runOutputs(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, { dims: readonly number[]; data: number[] }>> {
  const out = await session.run(feeds);
  const result: Record<string, { dims: readonly number[]; data: number[] }> = {};
  for (const [name, t] of Object.entries(out)) result[name] = { dims: t.dims, data: Array.from(t.data as ArrayLike<number>, Number) };
  return result;
}

/**
 * y = ((x @ W1) + b) @ W2 with W1 [k, h] and W2 [h, n] stored as `dataType`; the bias is fp32
 * and small (stays inline under any external-data threshold above its size).
 */
export function tinyMlp(dataType: DataType, k: number, h: number, n: number, seed: number): { model: OnnxModel; w1: Float32Array; w2: Float32Array; bias: Float32Array } {
  const w1 = randomFloats(k * h, seed, 0.5);
  const w2 = randomFloats(h * n, seed + 1, 0.5);
  const bias = randomFloats(h, seed + 2, 0.1);
  // ORT's CPU MatMul lacks bf16 (and fp16 on some builds): widen the stored weights with Cast.
  const widen = dataType !== DataType.FLOAT;
  const nodes = [
    ...(widen ? [makeNode('Cast', ['w1'], ['w1_f'], { to: DataType.FLOAT }), makeNode('Cast', ['w2'], ['w2_f'], { to: DataType.FLOAT })] : []),
    makeNode('MatMul', ['x', widen ? 'w1_f' : 'w1'], ['h'], {}, { name: 'fc1' }),
    makeNode('Add', ['h', 'b'], ['hb']),
    makeNode('MatMul', ['hb', widen ? 'w2_f' : 'w2'], ['y'], {}, { name: 'fc2' }),
  ];
  const model = makeModel(
    {
      name: 'tiny_mlp',
      nodes,
      inputs: [makeValueInfo('x', DataType.FLOAT, ['batch', k])],
      outputs: [makeValueInfo('y', DataType.FLOAT, ['batch', n])],
      initializers: [
        makeFloatTensorLike('w1', dataType, [k, h], w1),
        makeFloatTensorLike('w2', dataType, [h, n], w2),
        makeFloatTensorLike('b', DataType.FLOAT, [h], bias),
      ],
    },
    [{ domain: '', version: 21 }],
  );
  return { model, w1, w2, bias };
}
