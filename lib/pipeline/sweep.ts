// `w4a8 sweep`: one model, one calibration capture (cached, with the Hessian when a GPTQ
// configuration is in the grid), a grid of configurations each quantized, exported in memory
// and evaluated with the perplexity protocol. Writes sweep.md, sweep.json and sweep.svg.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import { exportQuantized } from '../export/export_model';
import { loadModel, ortModelSource } from '../onnx/model';
import { calibrate, type Calibration } from './calibrate';
import { configLabel } from '../quant/config';
import { planLayers, type LayerPlan } from '../quant/plan';
import { checkPlan, DEFAULT_CALIB_SEQLEN, DEFAULT_CALIB_TOKENS } from './quantize';
import { quantizeLayers } from '../quant/quantize_layers';
import type { Tokenizer } from '../tokenize/tokenizer';
import { writeFileAtomic } from '../util/atomic_write';
import { CancelToken, neverCancelled } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { readText } from '../tokenize/documents';
import { resolveTokenizer } from '../tokenize/model_tokenizer';
import { openDecoder } from '../ort/session';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity';
import { sweepToJson } from './report_json';
import { sweepToMarkdown } from './report_markdown';
import { sweepToSvg } from './report_svg';
import type { SweepEntry } from './sweep_configs';
import type { SweepReport, SweepRow } from './sweep_result';

export interface SweepOptions {
  model: string;
  calib: string;
  evalText: string;
  configs: SweepEntry[];
  /** Called after the grid with its rows; may return more entries to run (e.g. follow-ups of the best method). */
  followUps?: (rows: SweepRow[]) => SweepEntry[];
  tokenizer?: string | Tokenizer;
  ctx?: number;
  maxTokens?: number;
  calibTokens?: number;
  calibSeqlen?: number;
  exclude?: string[];
  outDir?: string;
  progress?: Progress;
  cancel?: CancelToken;
}

/** A prepared model: plan, weights cache and calibration shared by every configuration. */
export interface SweepContext {
  model: string;
  calibration: Calibration;
  weights: Map<string, Float32Array>;
  exclude: string[];
}

/** Quantize with one configuration, export in memory, evaluate. */
export async function evaluateEntry(sc: SweepContext, entry: SweepEntry, ev: { text: string; tokenizer: Tokenizer; ctx: number; maxTokens: number; progress: Progress; cancel: CancelToken }): Promise<{ result: PerplexityResult; quantizeSeconds: number; evalSeconds: number; meanLayerError?: number; bitsPerWeight?: number; extraParamsPct?: number }> {
  const t0 = Date.now();
  const model = loadModel(sc.model);
  const plan: LayerPlan = planLayers(model, sc.exclude);
  const parts = await quantizeLayers(model, plan, entry.config, sc.calibration.stats, { weights: sc.weights, cancel: ev.cancel, exportFormat: entry.format });
  const info = await exportQuantized(model, parts, entry.format);
  const { bytes, externalDataFolder } = ortModelSource(model);
  const t1 = Date.now();
  const session = await openDecoder(bytes, { externalDataFolder, sessionConfig: info.sessionConfig, label: `${sc.model} quantized (${configLabel(entry.config)})` });
  try {
    const result = await evaluatePerplexity({ session, text: ev.text, tokenizer: ev.tokenizer, ctx: ev.ctx, maxTokens: ev.maxTokens, cancel: ev.cancel });
    const errs = parts.reports.map((r) => r.errorAfter).filter((e): e is number => e !== undefined && Number.isFinite(e));
    const weights = parts.reports.reduce((s, r) => s + r.k * r.n, 0);
    const bits = parts.reports.reduce((s, r) => s + (r.bitsPerWeight ?? NaN) * r.k * r.n, 0);
    const extra = parts.reports.reduce((s, r) => s + (r.compensation?.extraParams ?? 0), 0);
    return {
      bitsPerWeight: weights > 0 && Number.isFinite(bits) ? bits / weights : undefined,
      extraParamsPct: weights > 0 ? (100 * extra) / weights : undefined,
      result,
      quantizeSeconds: (t1 - t0) / 1000,
      evalSeconds: (Date.now() - t1) / 1000,
      meanLayerError: errs.length > 0 ? errs.reduce((a, b) => a + b, 0) / errs.length : undefined,
    };
  } finally {
    await session.release();
  }
}

export async function sweep(opts: SweepOptions): Promise<SweepReport> {
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  const ctx = opts.ctx ?? 512;
  const maxTokens = opts.maxTokens ?? 20000;
  const exclude = opts.exclude ?? [];
  if (opts.configs.length === 0) throw new W4A8Error('the sweep has no configurations');
  const tokenizer = resolveTokenizer(opts.tokenizer, opts.model);
  const evalText = readText(opts.evalText);
  const calibText = readText(opts.calib);
  if (calibText.trim() === '') throw new W4A8Error(`calibration text ${opts.calib} is empty; give a text to calibrate on`);

  const model = loadModel(opts.model);
  const plan = planLayers(model, exclude);
  checkPlan(plan, opts.model);
  const calibration = await calibrate(model, plan, {
    text: calibText,
    label: opts.calib,
    tokenizer,
    seqlen: opts.calibSeqlen ?? DEFAULT_CALIB_SEQLEN,
    tokens: opts.calibTokens ?? DEFAULT_CALIB_TOKENS,
    hessian: true,
    progress,
    cancel,
  });
  const sc: SweepContext = { model: opts.model, calibration, weights: new Map(), exclude };

  const t0 = Date.now();
  const base = await evaluatePerplexity({ modelPath: opts.model, text: evalText, tokenizer, ctx, maxTokens, cancel });
  const baseline: SweepRow = { label: 'fp32', exportFormat: 'original', ppl: base.ppl, nll: base.nll, tokens: base.tokens, deltaPct: 0, quantizeSeconds: 0, evalSeconds: (Date.now() - t0) / 1000 };
  progress.log(`baseline ppl ${base.ppl.toFixed(4)} over ${base.tokens} tokens`);

  const rows: SweepRow[] = [];
  const ev = { text: evalText, tokenizer, ctx, maxTokens, progress, cancel };
  const run = async (entries: SweepEntry[]) => {
    progress.start('sweep', entries.length);
    for (let i = 0; i < entries.length; i++) {
      cancel.throwIfCancelled();
      const e = entries[i];
      const label = configLabel(e.config);
      const r = await evaluateEntry(sc, e, ev);
      rows.push({
        label,
        config: e.config,
        exportFormat: e.format,
        ppl: r.result.ppl,
        nll: r.result.nll,
        tokens: r.result.tokens,
        deltaPct: (r.result.ppl / base.ppl - 1) * 100,
        quantizeSeconds: r.quantizeSeconds,
        evalSeconds: r.evalSeconds,
        meanLayerError: r.meanLayerError,
        bitsPerWeight: r.bitsPerWeight,
        extraParamsPct: r.extraParamsPct,
      });
      progress.update(i + 1, `${label} [${e.format}] ppl ${r.result.ppl.toFixed(4)}`);
    }
    progress.stop();
  };
  await run(opts.configs);
  if (opts.followUps) await run(opts.followUps(rows));

  const report: SweepReport = {
    model: opts.model,
    calibText: opts.calib,
    evalText: opts.evalText,
    ctx,
    maxTokens,
    calibTokens: calibration.tokens,
    calibSeqlen: calibration.seqlen,
    createdAt: new Date().toISOString(),
    baseline,
    rows,
  };
  if (opts.outDir) writeSweep(report, opts.outDir);
  return report;
}

export function writeSweep(report: SweepReport, outDir: string): void {
  fs.mkdirSync(outDir, { recursive: true });
  writeFileAtomic(path.join(outDir, 'sweep.md'), sweepToMarkdown(report));
  writeFileAtomic(path.join(outDir, 'sweep.json'), sweepToJson(report));
  writeFileAtomic(path.join(outDir, 'sweep.svg'), sweepToSvg(report));
}
