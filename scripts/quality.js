#!/usr/bin/env node
// `npm run quality`: imports stories260K, runs the quality grid (scripts/docs/quality_doc.js) through
// the library's sweep, writes docs/quality/sweep.{md,json,svg} and the generated blocks of
// docs/QUALITY.md. Needs a built package (npm ci) and ../shared beside the checkout (or W4A8_SHARED).
// Options: --max-tokens N (eval tokens, default 20000), --out DIR (default docs/quality), --doc FILE,
// --only compensation (just the error-compensation rows and the calibration study: rewrites only
// their blocks of the doc, and writes the sweep files to DIR/compensation), --no-calibration-study
// (skip the sweeps at other calibration sizes, DIR/calibration/<tokens>).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { importLlama2c } = require('../dist/import/llama2c');
const { sweep, writeSweep } = require('../dist/pipeline/sweep');
const { createProgress, chooseProgressMode } = require('../dist/util/progress');
const { withSigint } = require('../dist/util/cancel');
const { writeBlocks, shownPath } = require('./docs/doc_blocks');
const { qualityGrid, qualityFollowUps, qualityCompensation, qualityCalibrationStudy, CALIBRATION_TOKENS, bestMethod, qualityBlocks, compensationBlocks } = require('./docs/quality_doc');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

async function main() {
  const root = path.resolve(__dirname, '..');
  // Paths go into the docs as given: relative to the repository root, never this machine's absolute paths.
  process.chdir(root);
  const shared = path.resolve(process.env.W4A8_SHARED || path.join(root, '..', 'shared'));
  const rel = (p) => path.relative(root, p);
  const ckpt = path.join(shared, 'models', 'stories260K', 'stories260K.bin');
  const tok = path.join(shared, 'models', 'stories260K', 'tok512.bin');
  const calib = path.join(shared, 'data', 'tinystories', 'calib.txt');
  const evalText = path.join(shared, 'data', 'tinystories', 'eval-dev.txt');
  for (const f of [ckpt, tok, calib, evalText]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: the quality run needs ../shared beside the checkout (or W4A8_SHARED)`);
  }
  const maxTokens = Number(option('max-tokens', '20000'));
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`--max-tokens must be a positive integer, got ${option('max-tokens')}`);
  const only = option('only', undefined);
  if (only !== undefined && only !== 'compensation') throw new RangeError(`--only takes 'compensation', got ${only}`);
  const outDir = path.resolve(root, option('out', 'docs/quality'), only ? only : '.');
  const doc = path.resolve(root, option('doc', 'docs/QUALITY.md'));
  const progress = createProgress(chooseProgressMode({}));
  const modelDir = path.join('build', 'quality', 'stories260K');
  await importLlama2c(ckpt, tok, modelDir, progress);
  const report = await withSigint((cancel) =>
    sweep({
      model: path.join(modelDir, 'model.onnx'),
      calib: rel(calib),
      evalText: rel(evalText),
      configs: only ? qualityCompensation(true) : [...qualityGrid(), ...qualityCompensation()],
      followUps: only ? undefined : (rows) => qualityFollowUps(bestMethod(rows)),
      ctx: 512,
      maxTokens,
      progress,
      cancel,
    }),
  );
  writeSweep(report, outDir);
  // The same model and eval at other calibration sizes, for the rows the calibration sample moves most.
  const studies = [];
  if (!process.argv.includes('--no-calibration-study')) {
    for (const tokens of CALIBRATION_TOKENS) {
      const study = await withSigint((cancel) =>
        sweep({ model: path.join(modelDir, 'model.onnx'), calib: rel(calib), evalText: rel(evalText), configs: qualityCalibrationStudy(), ctx: 512, maxTokens, calibTokens: tokens, progress, cancel }),
      );
      writeSweep(study, path.resolve(root, option('out', 'docs/quality'), 'calibration', String(tokens)));
      studies.push({ tokens, report: study });
    }
  }
  const command = `npm run quality${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const blocks = compensationBlocks(report, studies, command);
  writeBlocks(doc, only ? blocks : { ...qualityBlocks(report, command), ...blocks });
  process.stderr.write(`wrote ${shownPath(outDir, root)}/sweep.{md,json,svg} and the generated blocks of ${shownPath(doc, root)}\n`);
}

main().catch((err) => {
  process.stderr.write(`quality: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(err && err.name === 'CancelledError' ? 130 : 1);
});
