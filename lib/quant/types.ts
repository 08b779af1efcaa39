// What the quantizer hands to the exporters: per layer the canonical quantized weight (codes,
// scales, zero points in the MatMulNBits layout of formats.h) and its exact dequantization,
// and per shared input the AWQ scale that the exporter must divide the activation by.
import type { NodeProto, TensorProto } from 'onnx-buf';
import type { PlannedLayer } from './plan';
import type { QuantConfig } from './config';

export interface QuantizedLayer {
  layer: PlannedLayer;
  /** Grouping used for this layer (auto resolved). */
  grouping: 'oc' | 'ic';
  /** Group size of the codes (per channel: K rounded up to a power of two, as formats.h says). */
  groupSize: number;
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Uint8Array;
  /** Dequantized weight, fp32 [K, N] (what the sim export stores and every error is measured on). */
  dequantized: Float32Array;
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
  alpha?: number;
  /** AWQ: the alpha is of the weight-aware (duo) scale family. */
  awqDuoScaling?: boolean;
  clipRatio?: number;
  /** Relative output error on the calibration sample: before (plain RTN of the same config) and after the method. */
  errorBefore?: number;
  errorAfter?: number;
  awqFolded?: boolean;
}

export interface QuantizedModelParts {
  config: QuantConfig;
  layers: QuantizedLayer[];
  scalings: InputScaling[];
  reports: LayerReport[];
}
