// Sequential (block by block) calibration and quantization, as GPTQ and AutoAWQ do it: block i
// is calibrated on the outputs of blocks 0..i-1 already quantized, so each layer's statistics
// describe the inputs it will see in the quantized model, and memory holds one block at a time.
// Per block: a sub-graph of the block alone (ORT maps only its initializers from the side file),
// fed the previous block's outputs kept in memory, captures the statistics of its layers
// (in chunks that fit the capture budget); the layers are quantized; the block is exported into
// a second sub-graph and run once more to produce the inputs of the next block.
import * as fs from 'node:fs';
import type { NodeProto } from 'onnx-buf';
import { nodesComputing, splitBlocks, type BlockSplit, type BlockStage } from '../calib/blocks';
import { calibrationSessionConfig, captureStatistics, NO_PREPACK_ABOVE_BYTES, DEFAULT_CAPTURE_BUDGET, DEFAULT_SAMPLE_ROWS, planPasses, type CaptureTarget, type WindowRunner } from '../calib/capture';
import type { CalibStats } from '../native/calib_stats';
import type { DataType } from '../onnx/dtype';
import { ortModelSource, type OnnxModel } from '../onnx/model';
import { externalFiles } from '../onnx/external_data';
import { extractSubgraph, type Subgraph } from '../onnx/subgraph';
import { dataTypeOfOrt, openStage, plainStageValue, stageValueOf, type PlainStageValue, type StageValue } from '../ort/stage_session';
import { exportLayerWeight, exportQuantized } from '../export/export_model';
import type { ExportFormat, QuantConfig } from '../quant/config';
import { foldTarget, type InputGroup, type LayerPlan, type PlannedLayer } from '../quant/plan';
import { quantizeLayers } from '../quant/quantize_layers';
import type { InputScaling, LayerReport, QuantizedLayer, QuantizedModelParts } from '../quant/types';
import type { ResumeState } from './resume_state';
import { W4A8Error, UsageError } from '../util/errors';
import { neverCancelled, signalPoint, yieldToEventLoop, type CancelToken } from '../util/cancel';
import { collectGarbage } from '../util/gc';
import { memTrace } from '../native/mem_trace';
import { releaseFreedMemory } from '../native/process_memory';
import { silentProgress, type Progress } from '../util/progress';

export const CALIB_MODES = ['sequential', 'all'] as const;
export type CalibMode = (typeof CALIB_MODES)[number];

export function checkCalibMode(mode: unknown): CalibMode | undefined {
  if (mode === undefined) return undefined;
  if (typeof mode !== 'string' || !(CALIB_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`--calib-mode must be one of ${CALIB_MODES.join(', ')}; got ${JSON.stringify(mode)}`);
  }
  return mode as CalibMode;
}

/** Side files above this total make sequential calibration the default whatever the method (memory: one block at a time). */
export const SEQUENTIAL_ABOVE_BYTES = NO_PREPACK_ABOVE_BYTES;

/**
 * The default mode. Measured on stories260K (docs/QUALITY.md, "Sequential vs all-at-once"): AWQ is
 * better sequential, GPTQ better all at once (it fits each layer to its float function on the
 * inputs it is given, and the drift of the quantized prefix then counts against it). So: all at once
 * where the model is small and the method is not AWQ; sequential for AWQ and for models whose side
 * files pass 1 GiB, where an all-at-once forward maps the whole model per pass.
 */
export function defaultCalibMode(config: QuantConfig, model: OnnxModel): CalibMode {
  if (config.method === 'awq') return 'sequential';
  let total = 0;
  for (const file of externalFiles(model.proto, model.dir)) total += fs.statSync(file).size;
  return total > SEQUENTIAL_ABOVE_BYTES ? 'sequential' : 'all';
}

/** The model's blocks for the planned layers, or why it has none. */
export function blocksOf(model: OnnxModel, plan: LayerPlan, label: string): BlockSplit | { refused: string } {
  return splitBlocks(model, plan.layers.map((l) => ({ node: l.node, input: l.input })), label);
}

export interface SequentialOptions {
  config: QuantConfig;
  format: ExportFormat;
  windows: number[][];
  hessian: boolean;
  budgetBytes?: number;
  progress?: Progress;
  cancel?: CancelToken;
  /** Called with each group's quantized layers (the streamed write exports and drops them). */
  onGroupDone?: (layers: QuantizedLayer[]) => Promise<void>;
  /** Called with each block's statistics before its layers are quantized (tests compare them). */
  onStats?: (stage: BlockStage, stats: Map<string, CalibStats>) => void;
  /** Where finished blocks are recorded, and restored from when an earlier run recorded some (--resume). */
  resume?: ResumeState;
}

/** A finished block as the resume state keeps it (resume_state.ts). */
interface BlockSnapshot {
  layers: StoredLayer[];
  reports: LayerReport[];
  scalings: Omit<InputScaling, 'fold'>[];
}
/** A quantized layer without its graph objects (found again by weight name when restored). */
type StoredLayer = Omit<QuantizedLayer, 'layer' | 'dequantizedTensor' | 'exported'> & { weightName: string };
type StoredCarried = Record<string, PlainStageValue[]>;

function storeLayer(q: QuantizedLayer, format: ExportFormat): StoredLayer {
  return {
    weightName: q.layer.weightName,
    grouping: q.grouping,
    groupSize: q.groupSize,
    codes: q.codes,
    scales: q.scales,
    ...(q.zeroPoints ? { zeroPoints: q.zeroPoints } : {}),
    // Only the sim export reads the dequantized weight.
    dequantized: format === 'sim' ? q.dequantized : new Float32Array(0),
    ...(q.compensation ? { compensation: { ...q.compensation, compensated: undefined } } : {}),
  };
}

function restoreLayer(s: StoredLayer, layerOf: Map<string, PlannedLayer>): QuantizedLayer {
  const layer = layerOf.get(s.weightName);
  if (!layer) throw new W4A8Error(`the resume state names a layer this model does not plan (${s.weightName}); delete the resume folder to start over`);
  const { weightName: _w, ...rest } = s;
  return { ...rest, layer };
}

/**
 * How the quantized block runs to feed the next one: as the chosen export computes it where ONNX
 * Runtime runs that export (MatMulNBits, QDQ), else the standard-op simulation of the same numbers.
 */
function forwardFormat(format: ExportFormat): ExportFormat {
  return format === 'matmulnbits' || format === 'qdq' ? format : 'sim';
}

/** 95 s -> "1m35s", 4000 s -> "1h06m". */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Per window, the values later blocks read. */
type Carried = Map<string, StageValue[]>;

function carriedType(carried: Carried) {
  return (name: string): DataType | undefined => {
    const t = carried.get(name)?.[0];
    return t ? dataTypeOfOrt(t.type) : undefined;
  };
}

function stageRunner(sub: Subgraph, label: string, windows: number[][], carried: Carried, sessionConfig?: Record<string, string>) {
  return async (model: OnnxModel): Promise<WindowRunner> => {
    const { bytes, externalDataFolder } = ortModelSource(model);
    const stage = await openStage(bytes, { externalDataFolder, label, sessionConfig });
    return {
      run: (w, fetches) => {
        const feeds: Record<string, StageValue> = {};
        for (const name of sub.carriedInputs) feeds[name] = carried.get(name)![w];
        return stage.run(windows[w], feeds, fetches);
      },
      // The session's freed buffers go back to the kernel, not into glibc's free lists (measured:
      // 0.2-0.5 GB of freed C heap stayed resident between sessions).
      release: async () => {
        await stage.release();
        releaseFreedMemory();
      },
    };
  };
}

/**
 * A full V8 collection (dropped weight and statistics arrays) and the freed C heap handed back,
 * after a turn of the event loop so that the call that just returned has fully unwound. (V8 frees
 * dead ArrayBuffers' memory shortly after a collection, not during it: right after one,
 * process.memoryUsage() still counted 0.3-0.9 GB that a heap snapshot found unreachable.)
 */
async function reclaimMemory(): Promise<void> {
  await yieldToEventLoop();
  collectGarbage();
  releaseFreedMemory();
}

/** A quantized layer as it belongs to the block's forward sub-graph (the original stays for the model's own export). */
function layerInSub(q: QuantizedLayer, sub: Subgraph, copyOf: Map<string, NodeProto>): QuantizedLayer | undefined {
  const node = copyOf.get(q.layer.node.output[0]);
  return node ? { ...q, layer: { ...q.layer, node }, exported: false } : undefined;
}

function dropArrays(q: QuantizedLayer): void {
  q.codes = new Uint8Array(0);
  q.scales = new Float32Array(0);
  q.dequantized = new Float32Array(0);
  if (q.zeroPoints) q.zeroPoints = new Uint8Array(0);
}

/** What one block's chunks share: its forward copy (receiving each layer as it is quantized) and the run's state. */
interface BlockContext {
  model: OnnxModel;
  source: OnnxModel;
  plan: LayerPlan;
  stage: BlockStage;
  tag: string;
  opts: SequentialOptions;
  carried: Carried;
  sessionConfig?: Record<string, string>;
  fwd?: Subgraph;
  copyOf: Map<string, NodeProto>;
  fwdLayers: QuantizedLayer[];
  fwdFormat: ExportFormat;
  snapshot: BlockSnapshot;
}

/**
 * Captures one chunk's statistics and quantizes its layers. A function of its own so that the
 * statistics (a K = 11008 Hessian is 0.46 GiB) and the capture session are unreachable once it
 * returns: values of a finished loop iteration stay alive in the async frame's registers until
 * they are overwritten (heap snapshots showed the previous chunk's Hessians and the previous
 * block's forward session kept that way through the next capture).
 */
async function calibrateChunk(ctx: BlockContext, chunk: CaptureTarget[]): Promise<QuantizedModelParts> {
  const { opts, stage, plan } = ctx;
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  const groupOf = new Map(plan.groups.map((g) => [g.input, g]));
  const names = chunk.map((t) => t.input);
  const sub = extractSubgraph(ctx.source, nodesComputing(stage.captureNodes, names), [], carriedType(ctx.carried));
  const stats = await captureStatistics(sub.model, chunk, opts.windows, {
    hessian: opts.hessian,
    budgetBytes: opts.budgetBytes,
    progress,
    cancel,
    phase: `${ctx.tag} calibration`,
    open: stageRunner(sub, `${stage.label} of the model (calibration)`, opts.windows, ctx.carried, ctx.sessionConfig),
  });
  opts.onStats?.(stage, stats);
  const chunkGroups = names.map((n) => groupOf.get(n)!);
  const chunkPlan: LayerPlan = { ...plan, groups: chunkGroups, layers: chunkGroups.flatMap((g) => g.layers) };
  return quantizeLayers(ctx.model, chunkPlan, opts.config, stats, {
    progress,
    cancel,
    exportFormat: opts.format,
    onGroupDone: async (layers) => {
      // Kept before the streamed export drops the arrays.
      if (opts.resume) ctx.snapshot.layers.push(...layers.map((q) => storeLayer(q, opts.format)));
      if (ctx.fwd) {
        for (const q of layers) {
          const copy = layerInSub(q, ctx.fwd, ctx.copyOf);
          if (!copy) continue;
          await exportLayerWeight(ctx.fwd.model, copy, ctx.fwdFormat, opts.config);
          dropArrays(copy);
          ctx.fwdLayers.push(copy);
        }
      }
      if (opts.onGroupDone) await opts.onGroupDone(layers);
    },
  });
}

/** Runs the quantized block (its forward copy) on every window: the values later blocks read. A function of its own for the same reason as calibrateChunk. */
async function forwardBlock(ctx: BlockContext, fwd: Subgraph, fwdScalings: QuantizedModelParts['scalings']): Promise<Carried> {
  const { opts, stage } = ctx;
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  const { windows, config } = opts;
  const info = await exportQuantized(fwd.model, { config, layers: ctx.fwdLayers, scalings: fwdScalings, reports: [] }, ctx.fwdFormat, { fuseDecoder: false });
  const runner = await stageRunner(fwd, `${stage.label} of the model (quantized)`, windows, ctx.carried, { ...ctx.sessionConfig, ...info.sessionConfig })(fwd.model);
  memTrace(`${stage.label}: forward session open`);
  const outputs: Carried = new Map(stage.carriedOut.map((n) => [n, []]));
  try {
    progress.start(`${ctx.tag} forward`, windows.length);
    for (let w = 0; w < windows.length; w++) {
      cancel.throwIfCancelled();
      const out = await runner.run(w, stage.carriedOut);
      for (const n of stage.carriedOut) {
        const t = out[n] as StageValue | undefined;
        if (!t) throw new W4A8Error(`${stage.label}: ONNX Runtime returned no "${n}"`);
        outputs.get(n)!.push(t);
      }
      progress.update(w + 1, `${windows[w].length} tokens`);
      await yieldToEventLoop();
    }
    progress.stop();
  } finally {
    await runner.release();
  }
  memTrace(`${stage.label}: forward released`);
  return outputs;
}

/**
 * Calibrates and quantizes `plan` block by block. `model` is the model the quantization is
 * written into (weights read from it); `source` is an untouched copy whose nodes the block
 * sub-graphs are cut from (the same object when nothing is exported before the end).
 */
export async function quantizeSequential(model: OnnxModel, source: OnnxModel, plan: LayerPlan, split: BlockSplit, opts: SequentialOptions): Promise<QuantizedModelParts> {
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  const { windows, config } = opts;
  const parts: QuantizedModelParts = { config, layers: [], scalings: [], reports: [] };
  const groupOf = new Map(plan.groups.map((g) => [g.input, g]));
  const maxWindow = Math.max(...windows.map((w) => w.length));
  const fwdFormat = forwardFormat(opts.format);
  const sessionConfig = calibrationSessionConfig(source);
  let carried: Carried = new Map();
  const stages = split.stages;
  const started = Date.now();
  const resume = opts.resume;
  const restored = resume?.blocksDone ?? 0;
  if (restored > stages.length) throw new W4A8Error(`the resume state in ${resume!.dir} records ${restored} blocks; this model has ${stages.length}; delete it to start over`);
  if (restored > 0) {
    const layerOf = new Map(plan.layers.map((l) => [l.weightName, l]));
    for (let si = 0; si < restored; si++) {
      cancel.throwIfCancelled();
      const snap = resume!.loadBlock<BlockSnapshot>(si);
      const layers = snap.layers.map((s) => restoreLayer(s, layerOf));
      if (opts.onGroupDone) await opts.onGroupDone(layers);
      parts.layers.push(...layers);
      parts.reports.push(...snap.reports);
      for (const sc of snap.scalings) {
        const fold = groupOf.has(sc.input) ? foldTarget(model, groupOf.get(sc.input)!) : undefined;
        parts.scalings.push(fold ? { ...sc, fold } : { ...sc });
      }
    }
    const stored = resume!.loadCarried<StoredCarried>();
    carried = new Map(Object.entries(stored).map(([n, ts]) => [n, ts.map(stageValueOf)]));
    progress.log(`resuming after ${stages[restored - 1].label}: ${restored} of ${stages.length} blocks were done (state in ${resume!.dir})`, 'info');
  }
  for (let si = restored; si < stages.length; si++) {
    const stage = stages[si];
    // Blocks cost about the same: the time left is the mean block time so far times the blocks left.
    const left = si > 0 ? ((Date.now() - started) / si) * (stages.length - si) : undefined;
    const tag = `${stage.label} (${si + 1}/${stages.length}${left !== undefined ? `, about ${formatDuration(left)} left` : ''})`;
    // The block's forward copy receives each layer as soon as it is quantized.
    const fwd = stage.carriedOut.length > 0 ? extractSubgraph(source, stage.forwardNodes, stage.carriedOut, carriedType(carried)) : undefined;
    const copyOf = new Map<string, NodeProto>();
    if (fwd) for (const c of fwd.nodeCopy.values()) if (c.output[0] !== undefined) copyOf.set(c.output[0], c);
    const snapshot: BlockSnapshot = { layers: [], reports: [], scalings: [] };
    const ctx: BlockContext = { model, source, plan, stage, tag, opts, carried, sessionConfig, fwd, copyOf, fwdLayers: [], fwdFormat, snapshot };
    const fwdScalings: QuantizedModelParts['scalings'] = [];

    const groups = stage.targets.map((t) => groupOf.get(t)).filter((g): g is InputGroup => g !== undefined);
    const targets = groups.map((g) => ({ input: g.input, k: g.k, dataType: g.layers[0].dataType }));
    const chunks = planPasses(targets, opts.hessian, DEFAULT_SAMPLE_ROWS, maxWindow, opts.budgetBytes ?? DEFAULT_CAPTURE_BUDGET);
    for (const chunk of chunks) {
      cancel.throwIfCancelled();
      await reclaimMemory();
      memTrace(`${stage.label}: chunk start after gc`);
      const done = await calibrateChunk(ctx, chunk);
      memTrace(`${stage.label}: chunk quantized`);
      parts.layers.push(...done.layers);
      parts.reports.push(...done.reports);
      parts.scalings.push(...done.scalings);
      if (resume) {
        snapshot.reports.push(...done.reports);
        snapshot.scalings.push(...done.scalings.map(({ fold: _f, ...sc }) => sc));
      }
      // Folding 1/s into a norm weight would edit the shared initializer: the block copy takes a Mul.
      fwdScalings.push(...done.scalings.map((s) => ({ ...s, fold: undefined })));
    }

    if (fwd) {
      cancel.throwIfCancelled();
      await reclaimMemory();
      memTrace(`${stage.label}: forward export start after gc`);
      for (const [n, ts] of await forwardBlock(ctx, fwd, fwdScalings)) carried.set(n, ts);
    }
    for (const [name, last] of split.lastReader) if (last <= si) carried.delete(name);
    if (resume) {
      const storedCarried: StoredCarried = {};
      for (const [n, ts] of carried) storedCarried[n] = ts.map(plainStageValue);
      resume.saveBlock(si, snapshot, storedCarried);
    }
    memTrace(`${stage.label}: done`);
    progress.log(`${stage.label} done (${si + 1}/${stages.length}), ${formatDuration(Date.now() - started)} so far`, 'info');
    signalPoint('block-done');
  }
  return parts;
}
