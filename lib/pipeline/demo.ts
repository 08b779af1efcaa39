// The demo job: stories260K (llama2.c) -> ONNX fp32 -> W4A8 (GPTQ int4 g32 + int8 activations,
// exported as com.microsoft.MatMulNBits with accuracy_level 4, i.e. real W4A8 in stock ONNX
// Runtime) -> perplexity of both on held-out text, calibrated on different text.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { importLlama2c } from '../import/llama2c';
import { quantizeModel } from './quantize';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity';
import type { CancelToken } from '../util/cancel';
import type { Progress } from '../util/progress';
import { locateDemoAssets } from './demo_assets';

export interface DemoOptions {
  outDir: string;
  maxTokens: number;
  progress: Progress;
  cancel: CancelToken;
}

export interface DemoRow {
  model: string;
  path: string;
  ppl: number;
  tokens: number;
  relative: number;
}

export interface DemoResult {
  rows: DemoRow[];
  table: string;
  quantizeSeconds: number;
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const assets = locateDemoAssets();
  const { progress, cancel } = opts;

  progress.log(`importing ${assets.checkpoint}`);
  const imported = await importLlama2c(assets.checkpoint, assets.tokenizer, path.join(opts.outDir, 'fp32'), progress);
  cancel.throwIfCancelled();

  const w4a8Path = path.join(opts.outDir, 'w4a8', 'model.onnx');
  fs.mkdirSync(path.dirname(w4a8Path), { recursive: true });
  progress.log(`quantizing to W4A8 (GPTQ int4 g32 asymmetric, int8 activations, MatMulNBits) -> ${w4a8Path}`);
  const summary = await quantizeModel({
    input: imported.modelPath,
    output: w4a8Path,
    method: 'gptq',
    wformat: 'int4',
    groupSize: 32,
    symmetric: false,
    aformat: 'int8',
    format: 'matmulnbits',
    calib: assets.calibText,
    progress,
    cancel,
  });

  const evaluate = (modelPath: string): Promise<PerplexityResult> =>
    evaluatePerplexity({ modelPath, textPath: assets.evalText, ctx: 512, maxTokens: opts.maxTokens, progress, cancel });
  progress.log('evaluating fp32');
  const fp32 = await evaluate(imported.modelPath);
  progress.log('evaluating W4A8');
  const w4a8 = await evaluate(w4a8Path);

  const rows: DemoRow[] = [
    { model: 'fp32', path: imported.modelPath, ppl: fp32.ppl, tokens: fp32.tokens, relative: 1 },
    { model: 'W4A8 (gptq int4 g32 asym, int8 act, MatMulNBits)', path: w4a8Path, ppl: w4a8.ppl, tokens: w4a8.tokens, relative: w4a8.ppl / fp32.ppl },
  ];
  const table = [
    `stories260K on ${path.basename(assets.evalText)} (first ${fp32.tokens} predictions, ctx 512), calibrated on ${path.basename(assets.calibText)}`,
    '',
    '| model | perplexity | vs fp32 |',
    '|---|---|---|',
    ...rows.map((r) => `| ${r.model} | ${r.ppl.toFixed(4)} | ${r.relative === 1 ? '-' : `${((r.relative - 1) * 100).toFixed(2)} %`} |`),
    '',
    `models in ${opts.outDir}; quantization took ${summary.seconds.toFixed(1)} s`,
  ].join('\n');
  return { rows, table, quantizeSeconds: summary.seconds };
}
