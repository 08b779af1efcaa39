#!/usr/bin/env node
// How long one decode step of a KV-cache decoder takes, on either engine, with ORT's intra-op
// spinning on or off: the quick look behind `w4a8 bench e2e` (which runs whole generations).
//   node scripts/decode-step-time.js <model.onnx> [--engine ort|w4a8] [--ctx 128] [--runs 30] [--threads 2] [--spinning 0|1]
// Feeds one new token after a past of --ctx positions (past key/values filled with 0.01; speed does
// not depend on the values), the same feeds every run, all outputs fetched; 5 warm-up runs, then
// --runs timed ones; prints the median and the fastest step. Engine: w4a8 for models with com.w4a8
// nodes (the addon's session), else ort (onnxruntime-node). Needs `npm ci` and dist/ (npm run build).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const { loadModel } = require('../dist/onnx/model');
const { engineFor, openW4A8Session, ortEngineSession } = require('../dist/ort/engine_session');

const args = process.argv.slice(2);
const model = args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
if (!model || !fs.existsSync(model)) {
  process.stderr.write('usage: node scripts/decode-step-time.js <model.onnx> [--engine ort|w4a8] [--ctx 128] [--runs 30] [--threads 2] [--spinning 0|1]\n');
  process.exit(2);
}
const ctx = Number(opt('ctx', 128)), runs = Number(opt('runs', 30)), threads = Number(opt('threads', 2));
const spinning = opt('spinning', '0') === '1' ? '1' : '0';
const engine = opt('engine', engineFor(loadModel(model).proto));
if (!['ort', 'w4a8'].includes(engine) || !(ctx >= 0) || !(runs >= 1) || !(threads >= 1)) {
  process.stderr.write('--engine is ort or w4a8; --ctx >= 0, --runs >= 1, --threads >= 1\n');
  process.exit(2);
}

(async () => {
  const session = engine === 'w4a8'
    ? await openW4A8Session(model, { intraOpNumThreads: threads, sessionConfig: { 'session.intra_op.allow_spinning': spinning } })
    : ortEngineSession(await ort.InferenceSession.create(model, { intraOpNumThreads: threads, logSeverityLevel: 4, extra: { session: { 'intra_op.allow_spinning': spinning } } }));
  const feeds = {};
  for (const m of session.inputMetadata) {
    const n = m.name;
    if (n === 'input_ids') feeds[n] = new ort.Tensor('int64', BigInt64Array.from([5n]), [1, 1]);
    else if (n === 'attention_mask') feeds[n] = new ort.Tensor('int64', new BigInt64Array(ctx + 1).fill(1n), [1, ctx + 1]);
    else if (n === 'position_ids') feeds[n] = new ort.Tensor('int64', BigInt64Array.from([BigInt(ctx)]), [1, 1]);
    else if (/^past/.test(n)) {
      // [batch, kv heads, past, head size]: the named dims are batch (1) and the past length.
      const dims = m.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : ctx));
      feeds[n] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01), dims);
    } else throw new Error(`input ${n}: not a decoder input this script knows`);
  }
  const fetches = session.outputMetadata.map((m) => m.name);
  const times = [];
  for (let i = 0; i < 5 + runs; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds, fetches);
    if (i >= 5) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await session.release();
  times.sort((a, b) => a - b);
  const name = path.basename(path.dirname(path.resolve(model)));
  console.log(`${name} (${engine}, ${threads} threads, spinning ${spinning}) ctx ${ctx}: median step ${times[times.length >> 1].toFixed(2)} ms, fastest ${times[0].toFixed(2)} ms (${runs} runs)`);
})().catch((err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
