// A toy decoder for the quantization tests: input_ids -> embedding -> Mul by a norm weight ->
// q, k MatMuls sharing that input (an AWQ fold target) -> Add -> Tanh -> MatMul (down) -> MatMul
// (logits). Random non-zero weights, fp32 or fp16, inline or external data. Its vocabulary (512)
// fits the stories260K tokenizer, which is copied beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { saveModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { rng } from './eval_fixtures';
import { SHARED_DIR } from './shared_paths';

export const STORIES_TOKENIZER = path.join(SHARED_DIR, 'models', 'stories260K', 'tok512.bin');
export const CALIB_TEXT = path.join(SHARED_DIR, 'data', 'tinystories', 'calib.txt');
export const EVAL_TEXT = path.join(SHARED_DIR, 'data', 'tinystories', 'eval-dev.txt');

export interface ToyLmSpec {
  dtype: 'float32' | 'float16';
  external: boolean;
  dim?: number;
  seed?: number;
  /** Make one 32-wide group of q_proj's first output channel all zeros. */
  zeroGroup?: boolean;
  /** Put a NaN into down_proj's weight. */
  nanWeight?: boolean;
}

function randn(count: number, scale: number, r: () => number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/** Writes dir/model.onnx (+ model.onnx_data when external) and tok512.bin; returns the model path. */
export function writeToyLm(dir: string, spec: ToyLmSpec): string {
  const dim = spec.dim ?? 64;
  const vocab = 512;
  const hidden = 2 * dim;
  const r = rng(spec.seed ?? 7);
  const type = spec.dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
  const wq = randn(dim * dim, 0.3, r);
  if (spec.zeroGroup) for (let k = 0; k < 32; k++) wq[k * dim] = 0; // column 0 (output channel 0), k in 0..31
  const down = randn(dim * hidden, 0.3, r);
  if (spec.nanWeight) down[5] = NaN;
  const norm = randn(dim, 0.5, r).map((v) => 1 + v);
  const inits = [
    makeFloatTensorLike('embed.weight', type, [vocab, dim], randn(vocab * dim, 1, r)),
    makeFloatTensorLike('norm.weight', type, [dim], norm),
    makeFloatTensorLike('q_proj.weight', type, [dim, dim], wq),
    makeFloatTensorLike('k_proj.weight', type, [dim, dim], randn(dim * dim, 0.3, r)),
    makeFloatTensorLike('down_proj.weight', type, [dim, hidden], down),
    makeFloatTensorLike('lm_head.weight', type, [hidden, vocab], randn(hidden * vocab, 0.3, r)),
  ];
  const nodes = [
    makeNode('Gather', ['embed.weight', 'input_ids'], ['emb'], {}, { name: 'embed/Gather' }),
    makeNode('Mul', ['emb', 'norm.weight'], ['normed'], {}, { name: 'norm/Mul' }),
    makeNode('MatMul', ['normed', 'q_proj.weight'], ['q'], {}, { name: 'q_proj/MatMul' }),
    makeNode('MatMul', ['normed', 'k_proj.weight'], ['k'], {}, { name: 'k_proj/MatMul' }),
    makeNode('Add', ['q', 'k'], ['qk'], {}, { name: 'qk/Add' }),
    makeNode('Tanh', ['qk'], ['act'], {}, { name: 'act/Tanh' }),
    makeNode('MatMul', ['act', 'down_proj.weight'], ['down'], {}, { name: 'down_proj/MatMul' }),
    makeNode('MatMul', ['down', 'lm_head.weight'], ['logits'], {}, { name: 'lm_head/MatMul' }),
  ];
  const model = makeModel(
    {
      name: 'toy_lm',
      nodes,
      inputs: [makeValueInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
      outputs: [makeValueInfo('logits', type, ['batch', 'seq', vocab])],
      initializers: inits,
    },
    [{ domain: '', version: 17 }],
    { dir },
  );
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'model.onnx');
  saveModel(model, file, { externalData: spec.external ? 'always' : 'never' });
  fs.copyFileSync(STORIES_TOKENIZER, path.join(dir, 'tok512.bin'));
  return file;
}
