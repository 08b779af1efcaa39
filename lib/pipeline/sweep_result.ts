// What a sweep produces: one row per configuration, measured on one model and one eval text.
import type { ExportFormat, QuantConfig } from '../quant/config';

export interface SweepRow {
  /** "fp32" for the unquantized baseline, else configLabel(config). */
  label: string;
  /** Absent for the baseline. */
  config?: QuantConfig;
  /** How the quantized model was written and run; "original" for the baseline. */
  exportFormat: ExportFormat | 'original';
  ppl: number;
  nll: number;
  tokens: number;
  /** Relative change of ppl against the baseline, in percent (positive = worse). */
  deltaPct: number;
  /** Seconds spent quantizing (excluding the shared calibration capture) and evaluating. */
  quantizeSeconds: number;
  evalSeconds: number;
  /** Mean over layers of the calibration output error after quantization (relative), when measured. */
  meanLayerError?: number;
  /** Bits per weight of the deployable form over the quantized layers (codes, fp16 scales, zero points, correction factors). */
  bitsPerWeight?: number;
  /** Correction parameters as a percentage of the quantized layers' weights (0 without --compensate). */
  extraParamsPct?: number;
  note?: string;
}

export interface SweepReport {
  model: string;
  calibText: string;
  evalText: string;
  ctx: number;
  maxTokens: number;
  calibTokens: number;
  calibSeqlen: number;
  createdAt: string;
  baseline: SweepRow;
  rows: SweepRow[];
}
