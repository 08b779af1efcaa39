// Per-layer orchestration: for each group of layers sharing an input, read the weights, run the
// chosen method natively, resolve auto grouping by calibration output error, and collect what
// the exporters need plus one report line per layer.
import { W4A8Error } from '../util/errors';
import { countNonFinite } from '../native/tensor_codecs';
import { transposeMatrix } from '../native/tensor_layout';
import type { CalibStats } from '../native/calib_stats';
import type { OnnxModel } from '../onnx/model';
import { initializerMap } from '../onnx/graph';
import { tensorToFloat32 } from '../onnx/tensor';
import { CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import type { ExportFormat, QuantConfig } from './config';
import type { KernelActQuant } from '../native/quant';
import { nq, outputError, rtn, weightOptions, type WeightQuant } from './native_quant';
import { foldTarget, type InputGroup, type LayerPlan, type PlannedLayer } from './plan';
import type { InputScaling, LayerReport, QuantizedLayer, QuantizedModelParts } from './types';
import { reciprocal } from '../native/tensor_layout';
import { bitsPerWeight, compensateLayer } from './compensate';
import { isStreamedLayer, quantizeInSlices, type StreamedOptions } from './streamed_layer';
import type { SideFileWriter } from '../onnx/side_writer';
import { collectGarbage } from '../util/gc';

export interface LayerWeights {
  layer: PlannedLayer;
  /** fp32 [K, N] (Gemm transB weights are transposed natively on read). */
  w: Float32Array;
}

/** Reads a layer's weight as fp32 [K, N] and refuses NaN/Inf. */
export async function readLayerWeight(model: OnnxModel, layer: PlannedLayer): Promise<Float32Array> {
  const t = initializerMap(model).get(layer.weightName);
  if (!t) throw new W4A8Error(`weight "${layer.weightName}" of layer "${layer.name}" is not an initializer`);
  let w = tensorToFloat32(model, t);
  const bad = countNonFinite(w);
  if (bad > 0) throw new W4A8Error(`weight "${layer.weightName}" of layer "${layer.name}" holds ${bad} NaN/Inf values; fix the model before quantizing`);
  if (layer.transB) w = await transposeMatrix(w, layer.n, layer.k);
  return w;
}

/** Layers of at least this many weights (64 MiB in fp32) get a V8 collection before GPTQ. */
const LARGE_LAYER_ELEMENTS = 2 ** 24;

/**
 * RTN of a layer and its calibration output error. GPTQ needs only the error: the RTN arrays are
 * not returned then, and since they lived only in this call's frame nothing keeps them alive
 * while GPTQ runs (V8 may keep a value of the caller's frame until its register is reused).
 */
async function rtnBaseline(stats: CalibStats | undefined, lw: LayerWeights, c: QuantConfig, grouping: 'oc' | 'ic', keep: boolean): Promise<{ error?: number; plain?: WeightQuant }> {
  const plain = await rtn(lw.w, lw.layer.k, lw.layer.n, c, grouping);
  const error = await errorOf(stats, lw, plain.dequantized, c);
  return keep ? { error, plain } : { error };
}

function toLayer(lw: LayerWeights, q: WeightQuant, grouping: 'oc' | 'ic'): QuantizedLayer {
  return { layer: lw.layer, grouping, groupSize: q.groupSize, codes: q.codes, scales: q.scales, zeroPoints: q.zeroPoints, dequantized: q.dequantized };
}

interface GroupOutcome {
  layers: QuantizedLayer[];
  reports: LayerReport[];
  scaling?: InputScaling;
  /** Summed error after quantization (for auto grouping), NaN when not measured. */
  error: number;
}

async function errorOf(stats: CalibStats | undefined, lw: LayerWeights, deq: Float32Array, c: QuantConfig): Promise<number | undefined> {
  if (!stats || stats.sampleRows === 0) return undefined;
  return outputError(stats.sample, stats.sampleRows, lw.layer.k, lw.w, deq, lw.layer.n, c.aformat);
}

function baseReport(lw: LayerWeights, c: QuantConfig, grouping: 'oc' | 'ic', groupSize: number): LayerReport {
  return { name: lw.layer.name, weight: lw.layer.weightName, k: lw.layer.k, n: lw.layer.n, method: c.method, format: c.wformat, grouping, groupSize };
}

/**
 * How AWQ scores int8-activation candidates: with the CPU W4A8 kernels, quantizing activations the
 * way the export will run them (per token for the sim export, per token and K-block for MatMulNBits
 * and QDQ, which ONNX Runtime runs at accuracy_level 4). Float simulation for other activations, for
 * groups along N (no kernel layout), and for auto grouping (both sides must be scored alike).
 */
export function awqKernelActQuant(c: QuantConfig, grouping: 'oc' | 'ic', exportFormat: ExportFormat | undefined): KernelActQuant | undefined {
  if (c.aformat !== 'int8' || grouping !== 'oc' || c.grouping === 'auto') return undefined;
  return exportFormat === 'sim' ? 'per-token' : 'per-token-per-group';
}

async function quantizeGroupWith(model: OnnxModel, group: InputGroup, weights: LayerWeights[], c: QuantConfig, grouping: 'oc' | 'ic', stats: CalibStats | undefined, exportFormat?: ExportFormat): Promise<GroupOutcome> {
  const layers: QuantizedLayer[] = [];
  const reports: LayerReport[] = [];
  let total = 0;
  // Every method groups along K ('oc') or along N ('ic'); along N AWQ searches the scales only
  // (a clip per group would mix input channels) and GPTQ quantizes each input row's groups as it reaches it.
  const method = c.method;
  if (method === 'awq' || method === 'awq+gptq') {
    if (!stats || stats.sampleRows === 0) throw new W4A8Error('AWQ needs calibration activations; give --calib <text>');
    const res = await nq.awqSearch({
      x: stats.sample,
      rows: stats.sampleRows,
      k: group.k,
      meanAbs: stats.meanAbs,
      layers: weights.map((lw) => ({ w: lw.w, n: lw.layer.n })),
      config: weightOptions(c, grouping),
      act: c.aformat,
      kernelActQuant: awqKernelActQuant(c, grouping, exportFormat),
      // awq+gptq keeps only the scales: GPTQ sets every group's range again as it goes.
      ...(method === 'awq+gptq' ? { clipGrid: 1 } : {}),
    });
    for (const [i, lw] of weights.entries()) {
      let r: WeightQuant & { meanClip?: number; errorBefore: number; errorAfter: number } = res.layers[i];
      if (method === 'awq+gptq') {
        const hessian = requireHessian(stats);
        const g = await nq.gptqQuantize(lw.w, lw.layer.k, lw.layer.n, hessian, { ...gptqOptions(c, grouping), inputScale: res.scales, factorPrecision: factorPrecisionOf(hessian), name: lw.layer.weightName });
        const after = await outputError(stats.sample, stats.sampleRows, lw.layer.k, lw.w, g.dequantized, lw.layer.n, c.aformat, res.scales);
        r = { ...g, errorBefore: r.errorBefore, errorAfter: after };
      }
      const ql = toLayer(lw, r, grouping);
      const report: LayerReport = { ...baseReport(lw, c, grouping, r.groupSize), alpha: res.alpha, awqDuoScaling: res.duoScaling, ...(r.meanClip !== undefined ? { clipRatio: r.meanClip } : {}), errorBefore: r.errorBefore, errorAfter: r.errorAfter };
      // The weights are of diag(s) W and the layer reads x / s: the correction is fitted in that space.
      await addCompensation(ql, report, lw, c, stats, res.scales, false);
      layers.push(ql);
      reports.push(report);
      total += r.errorAfter;
    }
    const scaling: InputScaling = { input: group.input, k: group.k, scale: res.scales, inverseScale: await reciprocal(res.scales) };
    const fold = foldTarget(model, group);
    if (fold) scaling.fold = fold;
    reports.forEach((r) => (r.awqFolded = fold !== undefined));
    return { layers, reports, scaling, error: total };
  }
  for (const lw of weights) {
    const base = await rtnBaseline(stats, lw, c, grouping, method !== 'gptq');
    const before = base.error;
    let chosen: WeightQuant;
    if (method !== 'gptq') chosen = base.plain!;
    else {
      // The RTN arrays just dropped (a K = 11008 layer's are 0.2 GB) are freed before GPTQ's working set is allocated.
      if (lw.w.length >= LARGE_LAYER_ELEMENTS) {
        await yieldToEventLoop(); // the call that just returned fully unwound first
        collectGarbage();
      }
      const hessian = requireHessian(stats);
      chosen = await nq.gptqQuantize(lw.w, lw.layer.k, lw.layer.n, hessian, { ...gptqOptions(c, grouping), factorPrecision: factorPrecisionOf(hessian), name: lw.layer.weightName });
    }
    const after = method === 'rtn' ? before : await errorOf(stats, lw, chosen.dequantized, c);
    const ql = toLayer(lw, chosen, grouping);
    const report: LayerReport = { ...baseReport(lw, c, grouping, chosen.groupSize), method, errorBefore: before, errorAfter: after };
    await addCompensation(ql, report, lw, c, stats, undefined, true);
    layers.push(ql);
    reports.push(report);
    total += after ?? NaN;
  }
  return { layers, reports, error: total };
}

/**
 * GPTQ factors H in the precision it was kept in: capture keeps only the largest Hessians in fp32
 * (capture.ts hessianPrecision, K = 11008), and factoring those in fp32 too halves GPTQ's K x K copy.
 */
export function factorPrecisionOf(hessian: Float64Array | Float32Array): 'float64' | 'float32' {
  return hessian instanceof Float32Array ? 'float32' : 'float64';
}

function requireHessian(stats: CalibStats | undefined): Float64Array | Float32Array {
  if (!stats?.hessian) throw new W4A8Error('GPTQ needs the calibration Hessian; give --calib <text>');
  return stats.hessian;
}

/** Clip ratios of --clip-search: 1, 0.99, ..., 0.6 (GPTQ's own `mse` grid walks down in steps of 0.01 too). */
export const CLIP_SEARCH_GRID = 41;
export const CLIP_SEARCH_MIN = 0.6;

/** GPTQ's options for a config (damp 0.01, lazy blocks of 128, as the reference implementation). */
export function gptqOptions(c: QuantConfig, grouping: 'oc' | 'ic'): nq.WeightQuantOptions & nq.GptqOptions {
  return {
    ...weightOptions(c, grouping),
    damp: 0.01,
    actOrder: c.actOrder,
    blockSize: 128,
    ...(c.clipSearch ? { clipGrid: CLIP_SEARCH_GRID, clipMin: CLIP_SEARCH_MIN, clipHWeighted: true } : {}),
  };
}

/** Fits the configured correction beside a quantized layer and records it (and the bits per weight) in its report. */
async function addCompensation(ql: QuantizedLayer, report: LayerReport, lw: LayerWeights, c: QuantConfig, stats: CalibStats | undefined,
  inputScale: Float32Array | undefined, measure: boolean): Promise<void> {
  const { k, n } = lw.layer;
  report.bitsPerWeight = bitsPerWeight(c, k, n, 0);
  if (!c.compensate) return;
  const comp = await compensateLayer(c, { name: lw.layer.name, k, n, w: lw.w, wq: ql.dequantized, hessian: stats?.hessian, inputScale });
  if (!comp) {
    report.compensation = { method: c.compensate, rank: 0, extraParams: 0, extraFraction: 0, weightedError: 1, iterations: 0 };
    return;
  }
  const errorCompensated = measure && comp.compensated ? await errorOf(stats, lw, comp.compensated, c) : undefined;
  delete comp.compensated;
  ql.compensation = comp;
  report.bitsPerWeight = bitsPerWeight(c, k, n, comp.extraParams, comp.shapes ? 0 : comp.rank);
  report.compensation = {
    method: comp.method,
    rank: comp.rank,
    ...(comp.shapes ? { shapes: comp.shapes } : {}),
    extraParams: comp.extraParams,
    extraFraction: comp.extraParams / (k * n),
    weightedError: comp.weightedError,
    iterations: comp.iterations,
    ...(errorCompensated !== undefined ? { errorCompensated } : {}),
  };
}

/**
 * RTN and GPTQ quantize each layer on its own, so auto grouping picks per layer (AWQ's layers share
 * one input scaling, so it picks per group). Summing the group's relative errors would let the
 * layer with the largest relative error (v beside q and k) decide for all of them.
 */
function perLayerChoice(oc: GroupOutcome, ic: GroupOutcome): GroupOutcome {
  const out: GroupOutcome = { layers: [], reports: [], error: 0 };
  oc.layers.forEach((_, i) => {
    const eo = oc.reports[i].errorAfter ?? Infinity;
    const ei = ic.reports[i].errorAfter ?? Infinity;
    const pick = ei < eo ? ic : oc;
    out.layers.push(pick.layers[i]);
    out.reports.push(pick.reports[i]);
    out.error += Math.min(eo, ei);
  });
  return out;
}

export interface QuantizeLayersOptions extends StreamedOptions {
  progress?: Progress;
  cancel?: CancelToken;
  /** Weights already read (the sweep reuses them across configurations). */
  weights?: Map<string, Float32Array>;
  /** The export that will run the result (default matmulnbits): AWQ scores int8 candidates with its activation grain. */
  exportFormat?: ExportFormat;
  /** Called with each input group's layers as soon as they are quantized (a streamed write exports and drops them). */
  onGroupDone?: (layers: QuantizedLayer[]) => Promise<void>;
  /** The output's side file, written as layers are done: the sim export of a streamed layer puts its dequantized slices there. */
  sideWriter?: SideFileWriter;
}

/**
 * A layer too large for one buffer (streamed_layer.ts), quantized slice by slice with RTN or
 * GPTQ (the pipeline refused other configurations before any work). No output error is
 * measured: that needs the whole float weight.
 */
async function quantizeStreamed(model: OnnxModel, layer: PlannedLayer, c: QuantConfig, stats: CalibStats | undefined, opts: QuantizeLayersOptions): Promise<{ q: QuantizedLayer; report: LayerReport }> {
  const config = weightOptions(c, 'oc');
  const hessian = c.method === 'gptq' ? requireHessian(stats) : undefined;
  const r = await quantizeInSlices(model, layer, {
    ...opts,
    sizes: nq.quantizedSizes(layer.k, layer.n, config),
    quantizeSlice: (w, cols) => (hessian
      ? nq.gptqQuantize(w, layer.k, cols, hessian, { ...gptqOptions(c, 'oc'), factorPrecision: factorPrecisionOf(hessian), name: layer.weightName })
      : rtn(w, layer.k, cols, c, 'oc', layer.weightName)),
    dequantizedTo: opts.exportFormat === 'sim' ? opts.sideWriter : undefined,
  });
  const q: QuantizedLayer = { layer, grouping: 'oc', groupSize: r.groupSize, codes: r.codes, scales: r.scales, zeroPoints: r.zeroPoints, dequantized: r.dequantized, ...(r.dequantizedTensor ? { dequantizedTensor: r.dequantizedTensor } : {}) };
  const report: LayerReport = { name: layer.name, weight: layer.weightName, k: layer.k, n: layer.n, method: c.method, format: c.wformat, grouping: 'oc', groupSize: r.groupSize, slices: r.slices, bitsPerWeight: bitsPerWeight(c, layer.k, layer.n, 0) };
  return { q, report };
}

export async function quantizeLayers(model: OnnxModel, plan: LayerPlan, c: QuantConfig, stats: Map<string, CalibStats>, opts: QuantizeLayersOptions = {}): Promise<QuantizedModelParts> {
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  const parts: QuantizedModelParts = { config: c, layers: [], scalings: [], reports: [] };
  progress.start(`quantize ${c.method}`, plan.layers.length);
  let done = 0;
  for (const group of plan.groups) {
    cancel.throwIfCancelled();
    const streamed = new Map<PlannedLayer, { q: QuantizedLayer; report: LayerReport }>();
    for (const layer of group.layers) {
      if (isStreamedLayer(layer, opts.streamedWeightBytes)) streamed.set(layer, await quantizeStreamed(model, layer, c, stats.get(group.input), opts));
    }
    const rest: InputGroup = { ...group, layers: group.layers.filter((l) => !streamed.has(l)) };
    const weights: LayerWeights[] = [];
    for (const layer of rest.layers) {
      const cached = opts.weights?.get(layer.weightName);
      const w = cached ?? (await readLayerWeight(model, layer));
      if (!cached) opts.weights?.set(layer.weightName, w);
      weights.push({ layer, w });
    }
    const st = stats.get(group.input);
    let outcome: GroupOutcome = { layers: [], reports: [], error: 0 };
    if (rest.layers.length === 0) {
      // every layer of the group was streamed
    } else if (c.grouping === 'auto') {
      if (!st || st.sampleRows === 0) throw new W4A8Error('--grouping auto compares calibration output errors; give --calib <text>');
      const oc = await quantizeGroupWith(model, rest, weights, c, 'oc', st);
      const ic = await quantizeGroupWith(model, rest, weights, c, 'ic', st);
      outcome = c.method === 'awq' || c.method === 'awq+gptq' ? (ic.error < oc.error ? ic : oc) : perLayerChoice(oc, ic);
    } else {
      outcome = await quantizeGroupWith(model, rest, weights, c, c.grouping, st, opts.exportFormat ?? 'matmulnbits');
    }
    for (const { q, report } of streamed.values()) {
      outcome.layers.push(q);
      outcome.reports.push(report);
    }
    weights.length = 0; // the float weights of this group are no longer needed
    if (opts.onGroupDone) await opts.onGroupDone(outcome.layers);
    parts.layers.push(...outcome.layers);
    parts.reports.push(...outcome.reports);
    if (outcome.scaling) parts.scalings.push(outcome.scaling);
    done += group.layers.length;
    const last = outcome.reports[outcome.reports.length - 1];
    progress.update(done, `${last.name}${last.errorAfter !== undefined ? ` err ${last.errorAfter.toExponential(3)}` : ''}`);
    await yieldToEventLoop();
  }
  progress.stop();
  return parts;
}
