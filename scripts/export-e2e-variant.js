#!/usr/bin/env node
// One `w4a8-int8` export as `bench e2e` makes it (RTN int4 g128 asymmetric, int8 activations, lm_head
// quantized, the whole model in memory, then one side file), with the export's own options, for
// decode-loop comparisons of what those options change:
//   node scripts/export-e2e-variant.js --model <float model.onnx> --out <dir> [--no-merge-projections] [--no-fuse-decoder]
// Writes <dir>/model.onnx (+ model.onnx_data) and prints the export's notes. Needs dist/ (npm run build).
'use strict';
const path = require('node:path');
const { loadModel, saveModelAsync } = require('../dist/onnx/model');
const { resolveConfig } = require('../dist/quant/config');
const { planLayers } = require('../dist/quant/plan');
const { quantizeLayers } = require('../dist/quant/quantize_layers');
const { exportQuantized } = require('../dist/export/export_model');
const { OutputSet } = require('../dist/util/output_set');

const args = process.argv.slice(2);
const value = (name) => { const i = args.indexOf(`--${name}`); return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined; };
const model = value('model'), out = value('out');
if (!model || !out) {
  process.stderr.write('usage: node scripts/export-e2e-variant.js --model <float model.onnx> --out <dir> [--no-merge-projections] [--no-fuse-decoder]\n');
  process.exit(2);
}

(async () => {
  const config = resolveConfig({ method: 'rtn', wformat: 'int4', groupSize: 128, symmetric: false, grouping: 'oc', aformat: 'int8' });
  const m = loadModel(model);
  const parts = await quantizeLayers(m, planLayers(m, [], false), config, new Map(), { exportFormat: 'w4a8' });
  for (const q of parts.layers) q.dequantized = new Float32Array(0); // only the sim export reads them
  const info = await exportQuantized(m, parts, 'w4a8', { fuseDecoder: !args.includes('--no-fuse-decoder'), mergeProjections: !args.includes('--no-merge-projections') });
  process.stdout.write(`${info.notes.join('\n')}\n`);
  const file = path.join(out, 'model.onnx');
  const outputs = new OutputSet(file);
  try {
    await saveModelAsync(m, file, { externalData: 'always', into: outputs });
    outputs.commit();
  } finally {
    outputs.abort();
  }
  process.stdout.write(`wrote ${file}\n`);
})().catch((err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
