// The model set of `w4a8 bench e2e`: a float decoder (a random-weight preset, stories260K from the
// shared folder, or a model file), quantized ONCE, and exported from those same arrays as
// MatMulNBits (accuracy_level 4) and as com.w4a8 (the fused decoder) with int8 and with float
// activations, and once more with int8 activations in the standard-op graph (W4A8MatMul only).
// Random presets are also generated, with the same weights, in ONNX Runtime GenAI's graph layout
// (fused contrib ops), exported as MatMulNBits and as W4A8MatMul there.
// Everything generated goes into one temporary folder that `dispose()` removes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { E2eVariantModel } from '../bench/e2e';
import { exportQuantized } from '../export/export_model';
import { importLlama2c } from '../import/llama2c';
import { GENAI_HEAD_SIZE_MULTIPLE } from '../import/llama2c_graph_genai';
import { importRandomLlama, RANDOM_PRESETS } from '../import/llama2c_random';
import { byteSizeOf } from '../onnx/dtype';
import { modelMaxLength } from '../onnx/max_length';
import { loadModel, saveModelAsync } from '../onnx/model';
import { resolveConfig, type ActFormat, type ExportFormat, type QuantConfig } from '../quant/config';
import { planLayers } from '../quant/plan';
import { quantizeLayers } from '../quant/quantize_layers';
import type { QuantizedModelParts } from '../quant/types';
import { type CancelToken, neverCancelled } from '../util/cancel';
import { UsageError, W4A8Error } from '../util/errors';
import { OutputSet } from '../util/output_set';
import { type Progress, silentProgress } from '../util/progress';
import { checkPlan } from './quantize';
import { sharedDir } from './demo_assets';

/** The stories260K preset: the llama2.c checkpoint of the shared folder, imported. */
export const STORIES_PRESET = 'stories260K';
export const E2E_PRESETS: readonly string[] = [...Object.keys(RANDOM_PRESETS), STORIES_PRESET];

export interface E2eModelOptions {
  /** A preset name (E2E_PRESETS) or a float ONNX decoder with a KV cache. */
  model: string;
  /** Random presets: override the layer count. */
  layers?: number;
  /** Weight group size along K (default 128). */
  groupSize?: number;
  symmetric?: boolean;
  /** Keep the logits projection (lm_head) in float in every quantized variant (default false: all linear layers are quantized). */
  keepLogits?: boolean;
  /** Parent of the temporary folder (default os.tmpdir()). */
  tmpDir?: string;
  progress?: Progress;
  cancel?: CancelToken;
}

export interface E2eModels {
  /** The temporary folder holding every generated file (removed by dispose()). */
  dir: string;
  /** What the float model is: "tinyllama-1.1b (random weights, 22 layers)", a path, ... */
  source: string;
  /** "rtn int4-asym g128, lm_head quantized". */
  quantization: string;
  models: E2eVariantModel[];
  /** Why the -genai variants are absent, when they are. */
  genaiSkipped?: string;
  vocab: number;
  maxLength?: number;
  dispose(): void;
}

interface ExportPlan {
  variant: E2eVariantModel['variant'];
  format: ExportFormat;
  aformat: ActFormat;
  engine: E2eVariantModel['engine'];
  /** w4a8: the fused decoder (default) or the standard-op graph. */
  fuse?: boolean;
  /** Exported from the float model in ONNX Runtime GenAI's layout (default: the standard one). */
  genai?: boolean;
}

const EXPORTS: ExportPlan[] = [
  { variant: 'ort-nbits-acc4', format: 'matmulnbits', aformat: 'int8', engine: 'ort' },
  { variant: 'ort-nbits-acc0', format: 'matmulnbits', aformat: 'none', engine: 'ort' },
  { variant: 'w4a8-int8', format: 'w4a8', aformat: 'int8', engine: 'w4a8' },
  { variant: 'w4a8-int8-unfused', format: 'w4a8', aformat: 'int8', engine: 'w4a8', fuse: false },
  { variant: 'w4a8-a16', format: 'w4a8', aformat: 'none', engine: 'w4a8' },
  { variant: 'ort-nbits-acc4-genai', format: 'matmulnbits', aformat: 'int8', engine: 'ort', genai: true },
  // Nothing to fuse there: ONNX Runtime's contrib ops already do attention and the norms.
  { variant: 'w4a8-int8-genai', format: 'w4a8', aformat: 'int8', engine: 'w4a8', fuse: false, genai: true },
];

interface FloatModel {
  file: string;
  source: string;
  vocab?: number;
  /** The same weights in ONNX Runtime GenAI's layout, or why there is none. */
  genai: { file: string } | { skipped: string };
}

async function floatModel(o: E2eModelOptions, dir: string, progress: Progress): Promise<FloatModel> {
  if (Object.prototype.hasOwnProperty.call(RANDOM_PRESETS, o.model)) {
    const r = await importRandomLlama(o.model, path.join(dir, 'fp32'), { layers: o.layers, progress });
    const headSize = r.config.headSize;
    const genai = headSize % GENAI_HEAD_SIZE_MULTIPLE === 0
      ? { file: (await importRandomLlama(o.model, path.join(dir, 'fp32-genai'), { layers: o.layers, layout: 'genai', progress })).modelPath }
      : { skipped: `head size ${headSize} is not a multiple of ${GENAI_HEAD_SIZE_MULTIPLE}, which ONNX Runtime's GroupQueryAttention needs` };
    return { file: r.modelPath, source: `${o.model} (random weights, ${r.config.nLayers} layers)`, vocab: r.config.vocabSize, genai };
  }
  if (o.layers !== undefined) throw new UsageError(`--layers applies to the random presets (${Object.keys(RANDOM_PRESETS).join(', ')}), not to ${o.model}`);
  if (o.model === STORIES_PRESET) {
    const folder = path.join(sharedDir(), 'models', 'stories260K');
    const checkpoint = path.join(folder, 'stories260K.bin'), tokenizer = path.join(folder, 'tok512.bin');
    for (const f of [checkpoint, tokenizer]) {
      if (!fs.existsSync(f)) throw new W4A8Error(`the ${STORIES_PRESET} preset needs ${f}; put the shared folder beside the checkout as ../shared or set W4A8_SHARED`);
    }
    const r = await importLlama2c(checkpoint, tokenizer, path.join(dir, 'fp32'), progress);
    const skipped = `its head size ${r.config.headSize} is not a multiple of ${GENAI_HEAD_SIZE_MULTIPLE}, which ONNX Runtime's GroupQueryAttention needs`;
    return { file: r.modelPath, source: `${STORIES_PRESET} (llama2.c checkpoint)`, vocab: r.config.vocabSize, genai: { skipped } };
  }
  if (!fs.existsSync(o.model)) {
    throw new UsageError(`--model ${o.model} is neither a preset (${E2E_PRESETS.join(', ')}) nor an existing file`);
  }
  return { file: o.model, source: path.basename(o.model), genai: { skipped: 'a model file is benchmarked in its own graph only' } };
}

/** Generates the float model (presets), quantizes it once, and writes the quantized exports. */
export async function prepareE2eModels(o: E2eModelOptions): Promise<E2eModels> {
  const progress = o.progress ?? silentProgress;
  const cancel = o.cancel ?? neverCancelled;
  const config: QuantConfig = resolveConfig({ method: 'rtn', wformat: 'int4', groupSize: o.groupSize ?? 128, symmetric: o.symmetric ?? false, grouping: 'oc', aformat: 'int8' });
  const keepLogits = o.keepLogits ?? false;
  const dir = fs.mkdtempSync(path.join(o.tmpDir ?? os.tmpdir(), 'w4a8-bench-e2e-'));
  const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    progress.log(`bench e2e: models in ${dir} (removed at the end)`);
    const fp32 = await floatModel(o, dir, progress);
    cancel.throwIfCancelled();

    const source = loadModel(fp32.file);
    const plan = planLayers(source, [], keepLogits);
    checkPlan(plan, fp32.file);
    const parts = await quantizeLayers(source, plan, config, new Map(), { progress, cancel, exportFormat: 'w4a8' });
    // Only the sim export reads the dequantized weights; a 1B model's would hold 4 GB.
    for (const q of parts.layers) q.dequantized = new Float32Array(0);
    const byWeight = new Map(parts.layers.map((q) => [q.layer.weightName, q]));
    // What a decode step must read of the linear layers (every variant reads the same quantized arrays).
    const quantBytes = parts.layers.reduce((s, q) => s + q.codes.byteLength + q.scales.byteLength + (q.zeroPoints?.byteLength ?? 0), 0);
    const floatBytes = plan.layers.reduce((s, l) => s + (byteSizeOf(l.dataType, l.k * l.n) ?? l.k * l.n * 4), 0);

    const models: E2eVariantModel[] = [{ variant: 'ort-fp32', modelPath: fp32.file, engine: 'ort', linearWeightBytes: floatBytes }];
    const genaiFile = 'file' in fp32.genai ? fp32.genai.file : undefined;
    const exports = EXPORTS.filter((e) => !e.genai || genaiFile !== undefined);
    progress.start('export', exports.length);
    for (const [i, e] of exports.entries()) {
      cancel.throwIfCancelled();
      // Each export edits its own fresh copy of the graph; the arrays are the ones quantized above
      // (the GenAI-layout model has the same initializers, by name and value).
      const model = loadModel(e.genai ? genaiFile! : fp32.file);
      const fresh = planLayers(model, [], keepLogits);
      const layers = fresh.layers.map((layer) => {
        const q = byWeight.get(layer.weightName);
        if (!q) throw new W4A8Error(`internal: layer ${layer.name} was not quantized`);
        return { ...q, layer };
      });
      const copy: QuantizedModelParts = { config: { ...config, aformat: e.aformat }, layers, scalings: [], reports: [] };
      await exportQuantized(model, copy, e.format, { fuseDecoder: e.fuse ?? true });
      const out = path.join(dir, e.variant, 'model.onnx');
      const outputs = new OutputSet(out);
      try {
        await saveModelAsync(model, out, { externalData: 'always', into: outputs, cancel });
        outputs.commit();
      } finally {
        outputs.abort();
      }
      models.push({ variant: e.variant, modelPath: out, engine: e.engine, linearWeightBytes: quantBytes });
      progress.update(i + 1, e.variant);
    }
    progress.stop();
    const max = modelMaxLength(fp32.file);
    const vocab = fp32.vocab ?? 0;
    const quantization = `rtn int4-${config.symmetric ? 'sym' : 'asym'} g${config.groupSize}, ${keepLogits ? 'lm_head kept in float' : 'lm_head quantized too'}`;
    const genaiSkipped = 'skipped' in fp32.genai ? fp32.genai.skipped : undefined;
    return { dir, source: fp32.source, quantization, models, vocab, ...(genaiSkipped ? { genaiSkipped } : {}), ...(max ? { maxLength: max.tokens } : {}), dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}
