// Calibration for a layer plan: text -> windows (eval protocol) -> one capture of every planned
// layer input. The statistics depend only on the model and the text, so the sweep computes them
// once (with the Hessian when any configuration uses GPTQ) and reuses them for every configuration.
import type { CalibStats } from '../native/calib_stats';
import { calibrationWindows, type CalibWindows } from '../calib/calib_text';
import { captureStatistics } from '../calib/capture';
import type { OnnxModel } from '../onnx/model';
import { modelMaxLength } from '../onnx/max_length';
import { W4A8Error } from '../util/errors';
import type { Tokenizer } from '../tokenize/tokenizer';
import type { CancelToken } from '../util/cancel';
import type { Progress } from '../util/progress';
import type { LayerPlan } from '../quant/plan';

export interface Calibration {
  stats: Map<string, CalibStats>;
  tokens: number;
  seqlen: number;
  hessian: boolean;
  warning?: string;
}

export interface CalibrateOptions {
  text: string;
  label: string;
  tokenizer: Tokenizer;
  seqlen: number;
  tokens: number;
  hessian: boolean;
  budgetBytes?: number;
  progress?: Progress;
  cancel?: CancelToken;
}

/** The calibration windows of `opts` for `model`, its position limit checked first. */
export function calibrationWindowsFor(model: OnnxModel, opts: Pick<CalibrateOptions, 'text' | 'label' | 'tokenizer' | 'seqlen' | 'tokens' | 'progress'>): CalibWindows {
  // A window past the model's position table fails deep inside ONNX Runtime (a Gather out of
  // bounds) after the slow part has started: check the limit first and name it.
  const max = model.path ? modelMaxLength(model.path) : undefined;
  if (max && opts.seqlen > max.tokens) {
    throw new W4A8Error(`--calib-seqlen ${opts.seqlen} is longer than ${model.path} can take (${max.tokens} tokens, ${max.source}); give --calib-seqlen ${max.tokens} or less`);
  }
  const cw = calibrationWindows(opts.text, opts.label, opts.tokenizer, opts.seqlen, opts.tokens);
  if (cw.warning) opts.progress?.log(cw.warning, 'warn');
  return cw;
}

export async function calibrate(model: OnnxModel, plan: LayerPlan, opts: CalibrateOptions): Promise<Calibration> {
  const cw = calibrationWindowsFor(model, opts);
  const targets = plan.groups.map((g) => ({ input: g.input, k: g.k, dataType: g.layers[0].dataType }));
  const stats = await captureStatistics(model, targets, cw.windows, {
    hessian: opts.hessian,
    budgetBytes: opts.budgetBytes,
    progress: opts.progress,
    cancel: opts.cancel,
  });
  return { stats, tokens: cw.tokens, seqlen: opts.seqlen, hessian: opts.hessian, warning: cw.warning };
}
