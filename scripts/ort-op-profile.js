#!/usr/bin/env node
// Where one decode step's time goes, per operator type, in onnxruntime-node (its own profiler).
//   node scripts/ort-op-profile.js <model.onnx> [--ctx 128] [--runs 40] [--threads 2] [--spinning 0|1]
// Feeds one new token after a past of --ctx positions (past key/values filled with 0.01; speed does
// not depend on the values), runs it --runs times after 5 warm-up runs, and prints per op type the
// mean time per step and the node count, then the mean step and the share the kernels do not cover
// (the executor between nodes). For the models of `w4a8 bench e2e` (our llama2c graph, Optimum and
// GenAI names). Needs `npm ci` (onnxruntime-node); the profile file goes to the OS temp folder and is removed.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const ort = require('onnxruntime-node');

const args = process.argv.slice(2);
const model = args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
if (!model || !fs.existsSync(model)) {
  process.stderr.write('usage: node scripts/ort-op-profile.js <model.onnx> [--ctx 128] [--runs 40] [--threads 2] [--spinning 0|1]\n');
  process.exit(2);
}
const ctx = opt('ctx', 128), runs = opt('runs', 40), threads = opt('threads', 2), spinning = opt('spinning', 0);

(async () => {
  const prefix = path.join(os.tmpdir(), `w4a8-ort-op-profile-${process.pid}`);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, enableProfiling: true, profileFilePrefix: prefix, logSeverityLevel: 4,
    extra: { session: { 'intra_op.allow_spinning': String(spinning) } },
  });
  const feeds = {};
  for (const m of session.inputMetadata) {
    const n = m.name;
    if (n === 'input_ids') feeds[n] = new ort.Tensor('int64', BigInt64Array.from([5n]), [1, 1]);
    else if (n === 'attention_mask') feeds[n] = new ort.Tensor('int64', new BigInt64Array(ctx + 1).fill(1n), [1, ctx + 1]);
    else if (n === 'position_ids') feeds[n] = new ort.Tensor('int64', BigInt64Array.from([BigInt(ctx)]), [1, 1]);
    else if (/^past/.test(n)) {
      // [batch, kv heads, past, head size]: the named dims are fixed by the graph.
      const dims = m.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : ctx));
      feeds[n] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01), dims);
    } else throw new Error(`input ${n}: not a decoder input this script knows`);
  }
  for (let i = 0; i < 5 + runs; ++i) await session.run(feeds);
  session.endProfiling();  // onnxruntime-node returns no name: the file is <prefix>_<date>.json
  await session.release();
  const dir = path.dirname(prefix);
  const made = fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(prefix)) && f.endsWith('.json'));
  if (made.length !== 1) throw new Error(`expected one profile file ${prefix}_*.json, found ${made.length}`);
  const profile = path.join(dir, made[0]);
  const events = JSON.parse(fs.readFileSync(profile, 'utf8'));
  fs.rmSync(profile, { force: true });
  const steps = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(5);
  const first = steps[0].ts;
  const byOp = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < first) continue;
    const op = e.args.op_name;
    const r = byOp.get(op) ?? { us: 0, nodes: 0 };
    r.us += e.dur;
    r.nodes += 1;
    byOp.set(op, r);
  }
  const stepUs = steps.reduce((s, e) => s + e.dur, 0) / steps.length;
  const rows = [...byOp.entries()].sort((a, b) => b[1].us - a[1].us);
  const kernels = rows.reduce((s, [, r]) => s + r.us, 0) / steps.length;
  console.log(`${model}: ${steps.length} decode steps after ${ctx} positions, ${threads} threads, spinning ${spinning}, ONNX Runtime ${require('onnxruntime-node/package.json').version} (profiling on)`);
  console.log('| op type | us per step | share of the step | nodes per step |');
  console.log('|---|---|---|---|');
  for (const [op, r] of rows) console.log(`| ${op} | ${(r.us / steps.length).toFixed(0)} | ${((100 * r.us) / steps.length / stepUs).toFixed(1)} % | ${r.nodes / steps.length} |`);
  console.log(`| (between nodes) | ${(stepUs - kernels).toFixed(0)} | ${((100 * (stepUs - kernels)) / stepUs).toFixed(1)} % | |`);
  console.log(`mean step ${(stepUs / 1000).toFixed(2)} ms`);
})().catch((e) => {
  process.stderr.write(`ort-op-profile: ${e.message}\n`);
  process.exit(1);
});
