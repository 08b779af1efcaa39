// `importRandomLlama`: a LLaMA-shaped decoder with random weights (for speed work: the shapes of
// a real model, no checkpoint to download). The graph is the llama2.c importer's; weights are
// generated natively, one tensor at a time, and written straight into the side file, so memory
// stays at about one tensor however large the preset. A placeholder llama2.c tokenizer of the
// same vocabulary goes beside the model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import { OutputSet } from '../util/output_set';
import type { Progress } from '../util/progress';
import { fillRandom } from '../native/kernels';
import { modelBytes } from '../onnx/model';
import { ImportSideFile } from './side_sink';
import { placeholderLlama2cTokenizer, PLACEHOLDER_MIN_VOCAB } from '../tokenize/llama2c_placeholder';
import { checkpointLayout, type Llama2cConfig } from './llama2c_checkpoint';
import type { Llama2cWeights } from './llama2c_graph';
import { buildLlama2cDecoder, checkDecoderLayout, type DecoderLayout } from './decoder_layout';
import { GraphBuilder } from './graph_builder';
import { DataType } from '../onnx/dtype';

/** A preset's shape: the llama2.c header fields (the derived ones follow from these). */
export type RandomLlamaShape = Pick<Llama2cConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize' | 'seqLen'>;

export const RANDOM_PRESETS: Readonly<Record<string, RandomLlamaShape>> = {
  'tinyllama-1.1b': { dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000, seqLen: 2048 },
  'llama-7b': { dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 32000, seqLen: 2048 },
  // stories260K's shape: for tests and quick checks.
  'tiny-260k': { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 },
  // The smallest shape both layouts take (ONNX Runtime GenAI's GroupQueryAttention needs a head size that is a multiple of 16): for tests.
  'tiny-1m': { dim: 128, hiddenDim: 352, nLayers: 4, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 },
};

export const RANDOM_MODEL_DTYPES = ['float32', 'float16'] as const;
export type RandomModelDtype = (typeof RANDOM_MODEL_DTYPES)[number];

export interface RandomImportOptions {
  /** Override the preset's layer count. */
  layers?: number;
  /** Seed of the weights (default 0); one seed gives the same model bytes. */
  seed?: number;
  /** Weights, activations and cache in float32 (default) or float16, as an fp16 export has them. */
  dtype?: RandomModelDtype;
  /** The graph: standard ONNX ops (default) or ONNX Runtime GenAI's contrib-op layout. */
  layout?: DecoderLayout;
  progress?: Progress;
}

export interface RandomImportResult {
  modelPath: string;
  dataPath: string;
  tokenizerPath: string;
  config: Llama2cConfig;
  preset: string;
  seed: number;
  dtype: RandomModelDtype;
  layout: DecoderLayout;
}

/** The seed of one tensor: the model seed, the tensor's place in the layout and its layer. */
function tensorSeed(seed: number, tensorIndex: number, layer: number): number {
  return ((seed * 1000 + tensorIndex) * 4096 + layer) % 2 ** 52;
}

class RandomWeights implements Llama2cWeights {
  private readonly layout: Map<string, { index: number; shape: number[] }>;

  constructor(
    readonly config: Llama2cConfig,
    private readonly seed: number,
  ) {
    this.layout = new Map(checkpointLayout(config).tensors.map((t, index) => [t.name, { index, shape: t.shape }]));
  }

  shape(name: string): number[] {
    const t = this.layout.get(name);
    if (!t) throw new RangeError(`no tensor ${name} in a llama2.c model`);
    return t.shape;
  }

  read(name: string, layer = 0): Float32Array {
    const shape = this.shape(name);
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    // RMSNorm gains start at 1, as in training; matrices are uniform in +-1/sqrt(fan_in), which
    // keeps activations and logits in the range of a trained model's.
    if (shape.length === 1) out.fill(1);
    else {
      const bound = name === 'token_embedding_table' ? 1 : 1 / Math.sqrt(shape[1]);
      fillRandom(out, tensorSeed(this.seed, this.layout.get(name)!.index, layer), -bound, bound);
    }
    return out;
  }
}

function positiveInt(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Expected ${name} to be an integer >= ${min} but received ${String(value)}`);
  }
  return value;
}

export async function importRandomLlama(preset: string, outDir: string, opts: RandomImportOptions = {}): Promise<RandomImportResult> {
  const shape = RANDOM_PRESETS[preset];
  if (typeof preset !== 'string' || !Object.prototype.hasOwnProperty.call(RANDOM_PRESETS, preset)) {
    throw new W4A8Error(`unknown random model preset ${JSON.stringify(preset)}; presets: ${Object.keys(RANDOM_PRESETS).join(', ')}`);
  }
  if (typeof outDir !== 'string' || outDir.length === 0) throw new TypeError(`Expected a non-empty path for outDir but received ${String(outDir)}`);
  const nLayers = opts.layers === undefined ? shape.nLayers : positiveInt('layers', opts.layers, 1);
  const seed = opts.seed === undefined ? 0 : positiveInt('seed', opts.seed, 0);
  const dtype = opts.dtype ?? 'float32';
  if (!(RANDOM_MODEL_DTYPES as readonly unknown[]).includes(dtype)) throw new RangeError(`Expected dtype to be one of ${RANDOM_MODEL_DTYPES.join(', ')} but received ${String(dtype)}`);
  const layout = checkDecoderLayout(opts.layout ?? 'standard');
  const floatType = dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
  if (shape.vocabSize < PLACEHOLDER_MIN_VOCAB) throw new Error(`preset ${preset} has a vocabulary too small for a llama2.c tokenizer`);
  const config: Llama2cConfig = {
    ...shape,
    nLayers,
    sharedClassifier: false,
    headSize: shape.dim / shape.nHeads,
    kvDim: (shape.dim * shape.nKvHeads) / shape.nHeads,
  };

  if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new W4A8Error(`output ${outDir} exists and is not a folder`);
  const modelPath = path.join(outDir, 'model.onnx');
  const dataName = 'model.onnx_data';
  const dataPath = path.join(outDir, dataName);
  const tokenizerPath = path.join(outDir, 'tokenizer.bin');
  // One output set (util/output_set): folder, lock and staging first; swapped in together.
  const outputs = new OutputSet(modelPath);
  const staged = new Map([dataPath, tokenizerPath].map((p) => [p, outputs.staged(outputs.add(p))]));
  staged.set(modelPath, outputs.staged(modelPath));
  const side = new ImportSideFile(staged.get(dataPath)!, dataName, undefined, floatType);
  try {
    const g = new GraphBuilder((name, dims, data) => side.write(name, dims, data), undefined, (name, src, rows, cols) => side.writeTransposed(name, src, rows, cols), floatType);
    const label = `random weights, preset ${preset}, seed ${seed}${dtype === 'float16' ? ', float16' : ''}${layout === 'genai' ? ', ONNX Runtime GenAI layout' : ''}`;
    const model = await buildLlama2cDecoder(layout, new RandomWeights(config, seed), opts.progress, g, label);
    side.finish();
    fs.writeFileSync(staged.get(modelPath)!, modelBytes(model));
    fs.writeFileSync(staged.get(tokenizerPath)!, placeholderLlama2cTokenizer(config.vocabSize));
    outputs.commit();
    return { modelPath, dataPath, tokenizerPath, config, preset, seed, dtype, layout };
  } finally {
    side.close();
    outputs.abort(); // no-op once committed
  }
}
