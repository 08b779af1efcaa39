// Weights whose fp32 form is 2 GiB or more (an lm_head of 4096 x 131072) are quantized in slices
// of output channels, never held whole: the methods that treat output channels independently
// (RTN; GPTQ, whose Hessian is per input) quantize [K, slice] at a time, read from the side file,
// and each slice's codes, scales and zero points land in the layer's arrays at the slice's rows
// (the canonical layout of formats.h is one row per output channel). Those arrays are 1/8 of the
// float size and fit ordinary buffers. The sim export's dequantized weight is as large as the
// input: its slices go straight into the output's side file.
import type { TensorProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { writeExactly } from '../util/regular_file';
import { countNonFinite, float32ToHalves } from '../native/tensor_codecs';
import { transposeMatrix } from '../native/tensor_layout';
import { initializerMap } from '../onnx/graph';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import type { SideFileWriter } from '../onnx/side_writer';
import { makeExternalTensor } from '../onnx/tensor';
import { WeightSlices } from '../onnx/weight_slices';
import type { ExportFormat, QuantConfig } from './config';
import type { WeightQuant } from './native_quant';
import type { LayerPlan, PlannedLayer } from './plan';

/** Weights of this many fp32 bytes or more are quantized in slices (one Buffer holds at most 2 GiB for a read). */
export const STREAMED_WEIGHT_BYTES = 2 ** 31;
/** fp32 bytes of one slice [K, cols]: large enough that a slice is thousands of channels. */
export const SLICE_BYTES = 64 * 2 ** 20;

export interface StreamedOptions {
  /** Weights of at least this many fp32 bytes are streamed (default STREAMED_WEIGHT_BYTES; tests set it lower). */
  streamedWeightBytes?: number;
  /** fp32 bytes per slice (default SLICE_BYTES). */
  sliceBytes?: number;
}

export function isStreamedLayer(layer: { k: number; n: number }, threshold = STREAMED_WEIGHT_BYTES): boolean {
  return layer.k * layer.n * 4 >= threshold;
}

function sliceColumns(k: number, sliceBytes = SLICE_BYTES): number {
  return Math.max(1, Math.floor(sliceBytes / (k * 4)));
}

function weightTensor(model: OnnxModel, layer: PlannedLayer): TensorProto {
  const t = initializerMap(model).get(layer.weightName);
  if (!t) throw new W4A8Error(`weight "${layer.weightName}" of layer "${layer.name}" is not an initializer`);
  return t;
}

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/**
 * Before any work: a configuration that needs a streamed layer whole is refused, naming the
 * layer, its size and what to change. `streamedOutput`: the output's side file is written as
 * layers are done (the sim export writes the dequantized slices there).
 */
export function checkStreamedLayers(plan: LayerPlan, c: QuantConfig, format: ExportFormat, streamedOutput: boolean, opts: StreamedOptions = {}): void {
  for (const l of plan.layers) {
    if (!isStreamedLayer(l, opts.streamedWeightBytes)) continue;
    const why: string[] = [];
    if (c.method !== 'rtn' && c.method !== 'gptq') why.push(`--method ${c.method} (its input scaling is searched on whole layers)`);
    if (c.grouping !== 'oc') why.push(`--grouping ${c.grouping} (slices run along output channels, groups must run along K)`);
    if (c.compensate) why.push(`--compensate ${c.compensate} (a correction is fitted on the whole error matrix)`);
    if (format === 'sim' && !streamedOutput) why.push('--format sim without a side file to write the dequantized weight into');
    if (format === 'sim' && l.dataType !== DataType.FLOAT && l.dataType !== DataType.FLOAT16 && l.dataType !== DataType.BFLOAT16) why.push('--format sim of a weight that is not FLOAT, FLOAT16 or BFLOAT16');
    if (why.length > 0) {
      throw new W4A8Error(
        `layer "${l.name}": its weight "${l.weightName}" [${l.k}, ${l.n}] is ${gb(l.k * l.n * 4)} as fp32, so it is quantized in slices of output channels, ` +
          `which ${why.join(' and ')} cannot do; use --method rtn or gptq with --grouping oc, or --exclude "${l.name}" to keep it in float`,
      );
    }
  }
}

/** Refuses NaN/Inf in a streamed weight, one slice in memory at a time. */
export async function checkStreamedFinite(model: OnnxModel, layer: PlannedLayer, opts: StreamedOptions & { cancel?: CancelToken } = {}): Promise<void> {
  const slices = new WeightSlices(model, weightTensor(model, layer), layer.k, layer.n, layer.transB === true);
  try {
    const cols = sliceColumns(layer.k, opts.sliceBytes);
    for (let n0 = 0; n0 < layer.n; n0 += cols) {
      (opts.cancel ?? neverCancelled).throwIfCancelled();
      const n1 = Math.min(layer.n, n0 + cols);
      refuseNonFinite(layer, await slices.read(n0, n1), n0, n1);
      await yieldToEventLoop();
    }
  } finally {
    slices.close();
  }
}

function refuseNonFinite(layer: PlannedLayer, w: Float32Array, n0: number, n1: number): void {
  const bad = countNonFinite(w);
  if (bad > 0) {
    throw new W4A8Error(`weight "${layer.weightName}" of layer "${layer.name}" holds NaN/Inf values (${bad} in output channels ${n0}..${n1 - 1}); fix the model before quantizing`);
  }
}

/** The dequantized weight of the sim export, written slice by slice into the output's side file. */
class DequantizedSink {
  readonly tensor: TensorProto;
  private readonly at: number;
  private readonly element: number;

  constructor(private readonly writer: SideFileWriter, private readonly layer: PlannedLayer) {
    this.element = layer.dataType === DataType.FLOAT ? 4 : 2;
    const length = layer.k * layer.n * this.element;
    this.at = writer.reserve(length);
    const dims = layer.transB ? [layer.n, layer.k] : [layer.k, layer.n];
    this.tensor = makeExternalTensor(layer.weightName, layer.dataType, dims, writer.location, this.at, length);
  }

  /** Places the dequantized slice [K][cols] of channels n0.. in the tensor's layout. */
  async write(n0: number, cols: number, deq: Float32Array): Promise<void> {
    const { k, n, transB, dataType } = this.layer;
    const values = transB ? await transposeMatrix(deq, k, cols) : deq;
    const bytes = dataType === DataType.FLOAT
      ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
      : new Uint8Array(float32ToHalves(values, dataType === DataType.FLOAT16 ? 'float16' : 'bfloat16').buffer);
    const e = this.element;
    const fd = this.writer.descriptor;
    if (transB) writeExactly(fd, bytes, this.at + n0 * k * e);
    else for (let row = 0; row < k; row++) writeExactly(fd, bytes.subarray(row * cols * e, (row + 1) * cols * e), this.at + (row * n + n0) * e);
  }

  /** The finished tensor, owned by the side file (the exporter renames it when the weight is shared). */
  finish(): TensorProto {
    this.writer.adopt(this.tensor);
    return this.tensor;
  }
}

export interface StreamedResult extends WeightQuant {
  slices: number;
  /** sim: the dequantized weight, already in the output's side file. */
  dequantizedTensor?: TensorProto;
}

export interface QuantizeInSlicesOptions extends StreamedOptions {
  /** The canonical arrays' sizes for the whole layer (nq.quantizedSizes). */
  sizes: { codeBytes: number; scaleCount: number; zeroPointBytes: number };
  /** Quantizes fp32 [K][cols] (the same method and config for every slice). */
  quantizeSlice: (w: Float32Array, cols: number) => Promise<WeightQuant>;
  /** Set for the sim export: the dequantized slices go there. */
  dequantizedTo?: SideFileWriter;
  cancel?: CancelToken;
}

/** Quantizes a layer slice by slice; codes, scales and zero points are whole, the dequantized weight is not kept. */
export async function quantizeInSlices(model: OnnxModel, layer: PlannedLayer, opts: QuantizeInSlicesOptions): Promise<StreamedResult> {
  const { k, n } = layer;
  const cancel = opts.cancel ?? neverCancelled;
  const codes = new Uint8Array(opts.sizes.codeBytes);
  const scales = new Float32Array(opts.sizes.scaleCount);
  const zeroPoints = opts.sizes.zeroPointBytes > 0 ? new Uint8Array(opts.sizes.zeroPointBytes) : undefined;
  // Per output channel, in the canonical layout.
  const [codeRow, scaleRow, zeroRow] = [codes.length / n, scales.length / n, (zeroPoints?.length ?? 0) / n];
  const slices = new WeightSlices(model, weightTensor(model, layer), k, n, layer.transB === true);
  const sink = opts.dequantizedTo ? new DequantizedSink(opts.dequantizedTo, layer) : undefined;
  const cols = sliceColumns(k, opts.sliceBytes);
  let groupSize = 0;
  let count = 0;
  try {
    for (let n0 = 0; n0 < n; n0 += cols) {
      cancel.throwIfCancelled();
      const n1 = Math.min(n, n0 + cols);
      const w = await slices.read(n0, n1);
      refuseNonFinite(layer, w, n0, n1);
      const q = await opts.quantizeSlice(w, n1 - n0);
      codes.set(q.codes, n0 * codeRow);
      scales.set(q.scales, n0 * scaleRow);
      if (zeroPoints && q.zeroPoints) zeroPoints.set(q.zeroPoints, n0 * zeroRow);
      if (sink) await sink.write(n0, n1 - n0, q.dequantized);
      groupSize = q.groupSize;
      count++;
      await yieldToEventLoop();
    }
  } finally {
    slices.close();
  }
  return {
    codes,
    scales,
    ...(zeroPoints ? { zeroPoints } : {}),
    dequantized: new Float32Array(0),
    groupSize,
    slices: count,
    ...(sink ? { dequantizedTensor: sink.finish() } : {}),
  };
}
