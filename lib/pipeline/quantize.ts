// quantizeModel: the whole `w4a8 quantize` pipeline as a library call. Every check that can
// fail runs before anything is written: output path, configuration vs export format, the
// calibration text, quantizable layers, non-finite weights; then the model, its tokenizer and
// <out>.report.json are written atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TensorProto } from 'onnx-buf';
import { mainGraph } from '../export/graph_edit';
import { CancelledError, W4A8Error, UsageError } from '../util/errors';
import { readText } from '../tokenize/documents';
import { openDecoder } from '../ort/session';
import { resolveTokenizer } from '../tokenize/model_tokenizer';
import { checkExportSupports } from '../export/compat';
import { exportLayerWeight, exportQuantized, type ExportInfo } from '../export/export_model';
import { DEFAULT_INLINE_THRESHOLD, defaultExternalDataName, hasExternalData, loadModel, ortModelSource, saveModelAsync, type OnnxModel } from '../onnx/model';
import { SideFileWriter } from '../onnx/side_writer';
import { DEFAULT_CAPTURE_BUDGET, DEFAULT_SAMPLE_ROWS, planPasses } from '../calib/capture';
import type { CalibStats } from '../native/calib_stats';
import { findTokenizerBeside } from '../tokenize/load';
import type { Tokenizer } from '../tokenize/tokenizer';
import { OutputSet, checkOutputPath } from '../util/output_set';
import { readRegularFile } from '../util/regular_file';
import { CancelToken, neverCancelled } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { calibrate, calibrationWindowsFor, type Calibration } from './calibrate';
import { blocksOf, checkCalibMode, defaultCalibMode, quantizeSequential, type CalibMode } from './sequential';
import { fileIdentity, fingerprintOf, resumeDirFor, ResumeState } from './resume_state';
import { externalFiles } from '../onnx/external_data';
import { EXPORT_FORMATS, resolveConfig, usesGptq, type ExportFormat, type QuantConfig } from '../quant/config';
import { planLayers, type InputGroup, type LayerPlan } from '../quant/plan';
import { quantizeLayers, readLayerWeight } from '../quant/quantize_layers';
import { checkStreamedFinite, checkStreamedLayers, isStreamedLayer, type StreamedOptions } from '../quant/streamed_layer';
import type { LayerReport, QuantizedLayer, QuantizedModelParts } from '../quant/types';

export interface QuantizeModelOptions extends Partial<QuantConfig>, StreamedOptions {
  input: string;
  output: string;
  format?: ExportFormat;
  /** --format w4a8: fuse the decoder's attention and RMSNorms into com.w4a8 nodes too (default true). */
  fuseDecoder?: boolean;
  /** With fuseDecoder: merge q|k|v and gate|up into one W4A8MatMul each (default true; adapters cannot attach to merged layers). */
  mergeProjections?: boolean;
  /** With fuseDecoder: run an fp16 graph's activations, cache and logits in fp32 so that it can be fused (default true). */
  widenFloat16?: boolean;
  /** Calibration text: a file, or the text itself. */
  calib?: string;
  calibText?: string;
  /** Tokenizer file or object; default: the one beside the input model. */
  tokenizer?: string | Tokenizer;
  calibTokens?: number;
  calibSeqlen?: number;
  exclude?: string[];
  /** Keep the layer producing a graph output (logits) in full precision (default true). */
  keepLogits?: boolean;
  captureBudgetBytes?: number;
  /**
   * 'sequential': calibrate and quantize block by block, each block on the outputs of the quantized
   * blocks before it; 'all': every layer's statistics from one run of the float model. Default
   * (defaultCalibMode): sequential for AWQ and for models with more than 1 GiB of side files, else
   * all; sequential falls back to all, with a warning, when the node names do not give the blocks.
   */
  calibMode?: CalibMode;
  /**
   * Sequential calibration: record each finished block in a hidden folder beside the output
   * (resume_state.ts) and continue from the blocks an interrupted run with the same input, options
   * and calibration text recorded. The folder stays when the run stops early and goes once the
   * output is written.
   */
  resume?: boolean;
  progress?: Progress;
  cancel?: CancelToken;
}

export interface QuantizeSummary {
  input: string;
  output: string;
  report: string;
  config: QuantConfig;
  format: ExportFormat;
  calibTokens: number;
  /** How the calibration ran (absent without calibration). */
  calibMode?: CalibMode;
  /** --resume: the blocks taken from an interrupted run. */
  resumedBlocks?: number;
  layers: LayerReport[];
  excluded: { name: string; reason: string }[];
  export: ExportInfo;
  warnings: string[];
  seconds: number;
}

export const DEFAULT_CALIB_TOKENS = 8192;
export const DEFAULT_CALIB_SEQLEN = 512;

function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/** Checks of the command line itself: nothing is read yet. */
export function checkQuantizeArgs(opts: QuantizeModelOptions): { config: QuantConfig; format: ExportFormat } {
  if (typeof opts.input !== 'string' || opts.input === '') throw new UsageError('give the input model (<in.onnx>)');
  if (typeof opts.output !== 'string' || opts.output === '') throw new UsageError('give the output model with -o <out.onnx>');
  if (sameFile(opts.input, opts.output)) throw new UsageError(`the output ${opts.output} is the input model; inputs are never overwritten: choose another -o`);
  for (const [name, v] of [['streamedWeightBytes', opts.streamedWeightBytes], ['sliceBytes', opts.sliceBytes]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new RangeError(`Expected ${name} to be a positive integer (bytes) but received ${v}`);
  }
  const format = opts.format ?? 'matmulnbits';
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}; got ${JSON.stringify(format)}`);
  const config = resolveConfig(opts);
  checkExportSupports(format, config);
  checkCalibMode(opts.calibMode);
  checkOutputPath(opts.output, 'output model'); // its folder is created when the run starts
  return { config, format };
}

export function needsCalibration(c: QuantConfig): boolean {
  return c.method !== 'rtn' || c.grouping === 'auto' || needsHessian(c);
}

/** GPTQ and the activation-aware corrections need X^T X per input. */
export function needsHessian(c: QuantConfig): boolean {
  return usesGptq(c.method) || c.compensate === 'lorc-aware' || c.compensate === 'kron-aware';
}

export function checkPlan(plan: LayerPlan, label: string): void {
  if (plan.all.length === 0) throw new W4A8Error(`${label} has no quantizable MatMul/Gemm (a constant 2-D float weight with K >= 16); nothing to quantize`);
  if (plan.layers.length === 0) {
    throw new W4A8Error(`every quantizable layer of ${label} is excluded (${plan.excluded.map((e) => `${e.name}: ${e.reason}`).join('; ')}); nothing to quantize`);
  }
}

/** Loads the model with the format's checks done; the sweep calls the steps below itself. */
export async function quantizeModel(opts: QuantizeModelOptions): Promise<QuantizeSummary> {
  const started = Date.now();
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  const { config, format } = checkQuantizeArgs(opts);
  // Before any work: the output folder, the lock against a second writer, the staging folder.
  const outputs = new OutputSet(opts.output, { inputs: [opts.input] });
  try {
    checkOutputSetPaths(opts, outputs);
    return await quantizeInto(opts, config, format, outputs, started, progress, cancel);
  } finally {
    outputs.abort(); // no-op once committed
  }
}

/** Every file the set will hold must be a regular file or absent: refused before any work, never renamed over. */
function checkOutputSetPaths(opts: QuantizeModelOptions, outputs: OutputSet): void {
  checkOutputPath(path.join(outputs.dir, defaultExternalDataName(outputs.primary)), 'external data file of the output');
  checkOutputPath(`${opts.output}.report.json`, 'report');
  const tokenizerFile = typeof opts.tokenizer === 'string' ? opts.tokenizer : findTokenizerBeside(opts.input);
  if (tokenizerFile) checkOutputPath(path.join(outputs.dir, path.basename(tokenizerFile)), 'tokenizer copy');
}

async function quantizeInto(
  opts: QuantizeModelOptions,
  config: QuantConfig,
  format: ExportFormat,
  outputs: OutputSet,
  started: number,
  progress: Progress,
  cancel: CancelToken,
): Promise<QuantizeSummary> {
  const warnings: string[] = [];

  let calibText: string | undefined;
  let calibLabel = 'the calibration text';
  if (opts.calibText !== undefined) calibText = opts.calibText;
  else if (opts.calib !== undefined) {
    calibText = readText(opts.calib);
    calibLabel = opts.calib;
  }
  if (calibText !== undefined && calibText.trim() === '') throw new W4A8Error(`calibration text ${calibLabel} is empty; give a text to calibrate on`);
  if (calibText === undefined && needsCalibration(config)) {
    const why = config.method === 'rtn' && config.grouping !== 'auto' ? `--compensate ${config.compensate}` : `--method ${config.method}${config.grouping === 'auto' ? ' with --grouping auto' : ''}`;
    throw new UsageError(`${why} needs calibration text: give --calib <text>`);
  }

  const model = loadModel(opts.input);
  const externalInput = hasExternalData(model);
  const plan = planLayers(model, opts.exclude ?? [], opts.keepLogits ?? true);
  checkPlan(plan, opts.input);
  const streamed: StreamedOptions = { streamedWeightBytes: opts.streamedWeightBytes, sliceBytes: opts.sliceBytes };
  checkStreamedLayers(plan, config, format, externalInput, streamed);
  await checkWeightsFinite(model, plan, calibText !== undefined, streamed, cancel);
  const tokenizerFile = typeof opts.tokenizer === 'string' ? opts.tokenizer : findTokenizerBeside(opts.input);

  // With external data in, the output is streamed: each layer's quantized tensors go to the
  // output's (staged) side file as soon as its group is done, and its arrays are dropped, so
  // memory holds one group's weights and statistics, not the model. Calibration runs in chunks
  // of groups whose statistics fit the capture budget (the passes the capture would make
  // anyway), on an untouched copy of the graph, and each chunk is quantized before the next.
  let writer: SideFileWriter | undefined;
  if (externalInput) {
    const sidePath = outputs.add(path.join(outputs.dir, defaultExternalDataName(outputs.primary)), 'external data file');
    writer = new SideFileWriter(outputs.staged(sidePath), path.basename(sidePath), DEFAULT_INLINE_THRESHOLD);
  }
  try {
    const tokenizer = calibText !== undefined ? resolveTokenizer(opts.tokenizer, opts.input) : undefined;
    const calibModel = calibText !== undefined && writer ? loadModel(opts.input) : model;
    const seqlen = opts.calibSeqlen ?? DEFAULT_CALIB_SEQLEN;
    const chunks = calibText !== undefined && writer ? groupChunks(plan, needsHessian(config), seqlen, opts.captureBudgetBytes) : [plan.groups];
    const parts: QuantizedModelParts = { config, layers: [], scalings: [], reports: [] };
    let calibTokens = 0;
    // A group's tensors are held until all its layers are exported: the W4A8MatMul arrays of
    // layers reading one input (q, k, v; gate, up) go to the side file as runs, codes after codes,
    // scales after scales, so that merging them into one node (fuse_decoder.ts) is one reference
    // spanning each run, not a copy. Layers come a group at a time, or a whole block at once when
    // --resume restores it: split by input either way, so both write the same file.
    const streamOut = async (layers: QuantizedLayer[]): Promise<void> => {
      const byInput = new Map<string, QuantizedLayer[]>();
      for (const q of layers) byInput.set(q.layer.input, [...(byInput.get(q.layer.input) ?? []), q]);
      for (const group of byInput.values()) await streamGroup(group);
    };
    const streamGroup = async (layers: QuantizedLayer[]): Promise<void> => {
      const held: TensorProto[] = [];
      model.tensorSink = (t) => {
        held.push(t);
        return t;
      };
      try {
        for (const q of layers) {
          await exportLayerWeight(model, q, format, config);
          q.codes = new Uint8Array(0);
          q.scales = new Float32Array(0);
          q.dequantized = new Float32Array(0);
          if (q.zeroPoints) q.zeroPoints = new Uint8Array(0);
        }
      } finally {
        model.tensorSink = undefined;
      }
      if (format === 'w4a8' && layers.length > 1) {
        const outputs = new Set(layers.map((q) => q.layer.node.output[0]));
        const nodes = mainGraph(model).node.filter((n) => n.opType === 'W4A8MatMul' && outputs.has(n.output[0]));
        const byName = new Map(held.map((t) => [t.name, t]));
        for (const index of [1, 2, 3]) {
          const run = nodes.map((n) => byName.get(n.input[index] ?? ''));
          if (nodes.length === layers.length && run.every((t) => t !== undefined)) writer!.takeRun(run as TensorProto[]);
        }
      }
      for (const t of held) writer!.take(t); // the rest (and any run not written) one by one
      cancel.throwIfCancelled();
    };
    // Sequential mode where the graph gives its blocks (refused with the reason when asked for and it does not).
    let calibMode: CalibMode | undefined;
    let split: ReturnType<typeof blocksOf> | undefined;
    let resumeState: ResumeState | undefined;
    if (calibText !== undefined) {
      calibMode = opts.calibMode ?? defaultCalibMode(config, model);
      if (calibMode === 'sequential') {
        split = blocksOf(calibModel, plan, opts.input);
        if ('refused' in split) {
          if (opts.calibMode === 'sequential') throw new W4A8Error(`--calib-mode sequential: ${split.refused}; use --calib-mode all`);
          progress.log(`calibrating all layers at once: ${split.refused}`, 'info');
          calibMode = 'all';
          split = undefined;
        }
      }
    }
    if (opts.resume && !(split && !('refused' in split))) {
      throw new UsageError(
        calibText === undefined
          ? '--resume continues a calibrated run block by block; this one does not calibrate (give --calib, or drop --resume)'
          : '--resume continues sequential calibration; this run calibrates all layers at once (add --calib-mode sequential, or drop --resume)',
      );
    }
    if (split && !('refused' in split)) {
      const cw = calibrationWindowsFor(calibModel, { text: calibText!, label: calibLabel, tokenizer: tokenizer!, seqlen, tokens: opts.calibTokens ?? DEFAULT_CALIB_TOKENS, progress });
      if (cw.warning) warnings.push(cw.warning);
      calibTokens = cw.tokens;
      if (opts.resume) {
        // Everything that decides the result: a state made by a different run is refused, not mixed in.
        const fingerprint = fingerprintOf({
          input: [opts.input, ...externalFiles(model.proto, model.dir)].map(fileIdentity),
          config, format, exclude: opts.exclude ?? [], keepLogits: opts.keepLogits ?? true,
          budget: opts.captureBudgetBytes ?? null, windows: cw.windows, blocks: split.stages.map((st) => st.label),
        });
        resumeState = ResumeState.open(resumeDirFor(opts.output), fingerprint);
        progress.log(`--resume: finished blocks are kept in ${resumeState.dir} until the output is written`, 'info');
      }
      const done = await quantizeSequential(model, calibModel, plan, split, {
        config,
        format,
        windows: cw.windows,
        hessian: needsHessian(config),
        budgetBytes: opts.captureBudgetBytes,
        progress,
        cancel,
        onGroupDone: writer ? streamOut : undefined,
        resume: resumeState,
      }).catch((err: unknown) => {
        // The output is not written, but the finished blocks are kept: say where, and how to go on.
        if (err instanceof CancelledError && resumeState && fs.existsSync(path.join(resumeState.dir, 'state.json'))) {
          throw new CancelledError(`${err.message.replace(/, nothing written$/, ', output not written')}; the finished blocks are kept in ${resumeState.dir}: run the same command with --resume to continue`, err.exitCode);
        }
        throw err;
      });
      parts.layers.push(...done.layers);
      parts.scalings.push(...done.scalings);
      parts.reports.push(...done.reports);
    }
    for (const groups of split ? [] : chunks) {
      const sub: LayerPlan = { ...plan, groups, layers: groups.flatMap((g) => g.layers) };
      let stats = new Map<string, CalibStats>();
      if (calibText !== undefined) {
        const calibration: Calibration = await calibrate(calibModel, sub, {
          text: calibText,
          label: calibLabel,
          tokenizer: tokenizer!,
          seqlen,
          tokens: opts.calibTokens ?? DEFAULT_CALIB_TOKENS,
          hessian: needsHessian(config),
          budgetBytes: opts.captureBudgetBytes,
          progress,
          cancel,
        });
        if (calibration.warning && !warnings.includes(calibration.warning)) warnings.push(calibration.warning);
        calibTokens = calibration.tokens;
        stats = calibration.stats;
      }
      const done = await quantizeLayers(model, sub, config, stats, { progress, cancel, exportFormat: format, onGroupDone: writer ? streamOut : undefined, sideWriter: writer, ...streamed });
      parts.layers.push(...done.layers);
      parts.scalings.push(...done.scalings);
      parts.reports.push(...done.reports);
    }
    cancel.throwIfCancelled();
    const info = await exportQuantized(model, parts, format, { fuseDecoder: opts.fuseDecoder, mergeProjections: opts.mergeProjections, widenFloat16: opts.widenFloat16, sideWriter: writer });
    // A streamed model is checked as staged (its new tensors are in the staged side file).
    if (info.opsetRaisedFrom !== undefined && !writer) await checkLoads(model, info);
    cancel.throwIfCancelled();

    const reportPath = `${opts.output}.report.json`;
    const summary: QuantizeSummary = {
      input: opts.input,
      output: opts.output,
      report: reportPath,
      config,
      format,
      calibTokens,
      ...(calibMode ? { calibMode } : {}),
      ...(resumeState ? { resumedBlocks: resumeState.blocksDone } : {}),
      layers: parts.reports,
      excluded: plan.excluded,
      export: info,
      warnings,
      seconds: (Date.now() - started) / 1000,
    };
    await writeQuantized(model, outputs, externalInput, tokenizerFile, summary, cancel, writer);
    // The output is written: a resume state of this output (this run's, or one an earlier
    // interrupted run left) describes nothing left to do.
    if (resumeState) resumeState.remove();
    else fs.rmSync(resumeDirFor(opts.output), { recursive: true, force: true });
    return summary;
  } finally {
    writer?.close(); // no-op once saveModel finished it
  }
}

/** Input groups in chunks whose calibration statistics fit the capture budget (capture's own pass plan). */
function groupChunks(plan: LayerPlan, hessian: boolean, seqlen: number, budgetBytes: number | undefined): InputGroup[][] {
  const targets = plan.groups.map((g) => ({ input: g.input, k: g.k, dataType: g.layers[0].dataType }));
  const byInput = new Map(plan.groups.map((g) => [g.input, g]));
  return planPasses(targets, hessian, DEFAULT_SAMPLE_ROWS, seqlen, budgetBytes ?? DEFAULT_CAPTURE_BUDGET).map((pass) => pass.map((t) => byInput.get(t.input)!));
}

/** After raising the default opset, the model must still load in ONNX Runtime. */
export async function checkLoads(model: OnnxModel, info: ExportInfo): Promise<void> {
  const { bytes, externalDataFolder } = ortModelSource(model);
  try {
    const runner = await openDecoder(bytes, { externalDataFolder, label: 'the quantized model', sessionConfig: info.sessionConfig });
    await runner.release();
  } catch (err) {
    throw new W4A8Error(`after raising its opset from ${info.opsetRaisedFrom} to ${info.opset}, the model no longer loads: ${(err as Error).message}; use --format matmulnbits or sim`);
  }
}

/**
 * Refuses NaN/Inf weights before the (slow) calibration; one weight in memory at a time. A weight
 * too large for one buffer is read in slices: without calibration, its quantization (which refuses
 * NaN/Inf slice by slice, before anything is committed) is the only pass. A function of its own,
 * so that no weight it read (a 7B down_proj is 0.17 GiB) can stay reachable from a register of the
 * caller's frame for the rest of the run, as heap snapshots showed other values doing in sequential.ts.
 */
async function checkWeightsFinite(model: OnnxModel, plan: LayerPlan, calibrates: boolean, streamed: StreamedOptions, cancel: CancelToken): Promise<void> {
  for (const l of plan.layers) {
    if (!isStreamedLayer(l, streamed.streamedWeightBytes)) await readLayerWeight(model, l);
    else if (calibrates) await checkStreamedFinite(model, l, { ...streamed, cancel });
  }
}

/** checkLoads for a streamed model: ORT opens the staged model by path, its side file beside it. */
async function checkStagedLoads(staged: string, info: ExportInfo): Promise<void> {
  try {
    const runner = await openDecoder(staged, { label: 'the quantized model', sessionConfig: info.sessionConfig });
    await runner.release();
  } catch (err) {
    throw new W4A8Error(`after raising its opset from ${info.opsetRaisedFrom} to ${info.opset}, the model no longer loads: ${(err as Error).message}; use --format matmulnbits or sim`);
  }
}

/**
 * Model (external data kept as the input had it), tokenizer copy and report, staged in
 * `outputs` and swapped in together; a signal between tensors stops it with nothing written.
 */
export async function writeQuantized(
  model: OnnxModel,
  outputs: OutputSet,
  externalInput: boolean,
  tokenizerFile: string | undefined,
  summary: QuantizeSummary,
  cancel: CancelToken = neverCancelled,
  sideWriter?: SideFileWriter,
): Promise<void> {
  const output = outputs.primary;
  await saveModelAsync(model, output, { externalData: externalInput ? 'always' : 'auto', into: outputs, cancel, sideWriter });
  if (sideWriter && summary.export.opsetRaisedFrom !== undefined) await checkStagedLoads(outputs.staged(output), summary.export);
  if (tokenizerFile) {
    const dest = path.join(outputs.dir, path.basename(tokenizerFile));
    if (!sameFile(tokenizerFile, dest)) fs.writeFileSync(outputs.staged(outputs.add(dest, 'tokenizer')), readRegularFile(tokenizerFile, 'tokenizer'));
  }
  fs.writeFileSync(outputs.staged(outputs.add(summary.report, 'report')), JSON.stringify(summary, null, 2) + '\n');
  cancel.throwIfCancelled();
  outputs.commit();
}
