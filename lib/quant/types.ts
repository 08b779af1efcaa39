// What the quantizer hands to the exporters: per layer the canonical quantized weight (codes,
// scales, zero points in the MatMulNBits layout of formats.h) and its exact dequantization,
// and per shared input the AWQ scale that the exporter must divide the activation by.
import type { NodeProto, TensorProto } from 'onnx-buf';
import type { PlannedLayer } from './plan';
import type { QuantConfig } from './config';
import type { KronShape, LayerCompensation } from './compensate';

export interface QuantizedLayer {
  layer: PlannedLayer;
  /** Grouping used for this layer (auto resolved). */
  grouping: 'oc' | 'ic';
  /** Group size of the codes (per channel: K rounded up to a power of two, as formats.h says). */
  groupSize: number;
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Uint8Array;
  /** Dequantized weight, fp32 [K, N] (what the sim export stores and every error is measured on); empty for a layer quantized in slices. */
  dequantized: Float32Array;
  /** A layer quantized in slices, sim export: its dequantized weight, already written to the output's side file. */
  dequantizedTensor?: TensorProto;
  /** The correction C beside the weight (exported as standard MatMul/Add nodes reading the layer's input). */
  compensation?: LayerCompensation;
  /** Set once the weight is in the model (a streamed quantization exports each layer as it is done and drops its arrays). */
  exported?: boolean;
}

export interface InputScaling {
  /** The activation the layers read. */
  input: string;
  k: number;
  /** The weights were multiplied row-wise by s; the activation must be divided by s. */
  scale: Float32Array;
  /** 1 / s (computed natively next to s). */
  inverseScale: Float32Array;
  /** Where 1/s folds into a preceding normalization weight; absent -> an explicit Mul node. */
  fold?: { mul: NodeProto; weight: TensorProto };
}

export interface LayerReport {
  name: string;
  weight: string;
  k: number;
  n: number;
  method: string;
  format: string;
  grouping: 'oc' | 'ic';
  groupSize: number;
  /** Set when the weight was too large for one buffer: the number of slices of output channels it was quantized in (no output error is measured then). */
  slices?: number;
  alpha?: number;
  /** AWQ: the alpha is of the weight-aware (duo) scale family. */
  awqDuoScaling?: boolean;
  clipRatio?: number;
  /** Relative output error on the calibration sample: before (plain RTN of the same config) and after the method. */
  errorBefore?: number;
  errorAfter?: number;
  awqFolded?: boolean;
  /** Bits per weight of the deployable form: codes, fp16 scales, 4-bit zero points, fp16 correction factors. */
  bitsPerWeight?: number;
  compensation?: {
    method: string;
    rank: number;
    shapes?: KronShape;
    extraParams: number;
    /** extraParams / (K * N). */
    extraFraction: number;
    /** tr((E-C)^T H (E-C)) / tr(E^T H E), damped H (identity for lorc). */
    weightedError: number;
    iterations: number;
    /** Relative calibration output error with the correction (errorAfter is without); not measured for AWQ layers. */
    errorCompensated?: number;
  };
}

export interface QuantizedModelParts {
  config: QuantConfig;
  layers: QuantizedLayer[];
  scalings: InputScaling[];
  reports: LayerReport[];
}
