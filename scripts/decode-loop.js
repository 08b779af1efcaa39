#!/usr/bin/env node
// A greedy-decode loop as `w4a8 bench e2e` runs it (prefill, then one token per step feeding the
// present outputs back as past), timed per model, with other sessions optionally held open in the
// same process: how much a decode step changes when the process also holds other models.
//   node scripts/decode-loop.js --time <model.onnx> [--time <model.onnx> ...] [--hold <model.onnx> ...]
//                               [--ctx 128] [--steps 64] [--rounds 2] [--threads 2] [--spinning 0|1] [--gc] [--engine ort|w4a8]
// (--threads 0 leaves ONNX Runtime its own default intra-op thread count.)
// Each --time model is timed in turn, --rounds times (ms per decode step, after a prefill of --ctx
// seeded ids); --hold models are opened first and kept open, unused. --gc: a full garbage collection
// before each timed loop (as bench e2e does), so that one model's garbage is not collected in the next one's time. Engines follow the models
// (com.w4a8 nodes: the addon's session). Also prints the process's anonymous memory in huge pages once the
// models are open, and at the end the process's peak RSS. Needs `npm ci` and dist/ (npm run build).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { openDecoder } = require('../dist/ort/session');
const { engineFor } = require('../dist/ort/engine_session');
const { loadModel } = require('../dist/onnx/model');
const { collectGarbage } = require('../dist/util/gc');

const args = process.argv.slice(2);
const all = (name) => args.flatMap((a, i) => (a === `--${name}` && i + 1 < args.length ? [args[i + 1]] : []));
const one = (name, fallback) => Number(all(name)[0] ?? fallback);
const timed = all('time'), held = all('hold');
const ctx = one('ctx', 128), steps = one('steps', 64), rounds = one('rounds', 2), threads = one('threads', 2);
const spinning = all('spinning')[0] === '1' ? '1' : '0';
const gc = args.includes('--gc');
const forced = all('engine')[0]; // every model in this session kind (default: picked from the model)
if (timed.length === 0 || (forced !== undefined && forced !== 'ort' && forced !== 'w4a8') || [...timed, ...held].some((m) => !fs.existsSync(m)) || !(ctx >= 1) || !(steps >= 1) || !(rounds >= 1)) {
  process.stderr.write('usage: node scripts/decode-loop.js --time <model.onnx> [--time ...] [--hold <model.onnx> ...] [--ctx 128] [--steps 64] [--rounds 2] [--threads 2] [--spinning 0|1] [--gc] [--engine ort|w4a8]\n');
  process.exit(2);
}

async function open(model) {
  const engine = forced ?? engineFor(loadModel(model).proto);
  const sessionConfig = engine === 'ort' ? { 'intra_op.allow_spinning': spinning } : { 'session.intra_op.allow_spinning': spinning };
  return openDecoder(model, { engine, intraOpNumThreads: threads, sessionConfig });
}
const label = (m) => path.basename(path.dirname(path.resolve(m)));

(async () => {
  const holding = [];
  for (const m of held) holding.push(await open(m));
  const sessions = [];
  for (const m of timed) sessions.push(await open(m));
  // Anonymous memory in transparent huge pages once the models are open (packed weights should be).
  try {
    const kb = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n').filter((l) => l.startsWith('AnonHugePages:'))
      .reduce((sum, l) => sum + Number(l.split(/\s+/)[1]), 0);
    console.log(`anonymous huge pages after opening: ${(kb / 1024).toFixed(0)} MiB (/proc/self/smaps)`);
  } catch {
    console.log('anonymous huge pages: /proc/self/smaps unreadable (not Linux?)');
  }
  const ids = Array.from({ length: ctx }, (_, i) => 3 + ((i * 7919) % 30000));
  for (let round = 0; round < rounds; round++) {
    for (const [i, s] of sessions.entries()) {
      if (gc) collectGarbage();
      let r = await s.step(ids);
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      for (let k = 0; k < steps; k++) r = await s.step([5 + k], r.cache);
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpu = process.cpuUsage(c0);
      const ms = wallMs / steps;
      // Process CPU time over wall time: about the number of threads kept busy (1.0: one thread did the work).
      const busy = (cpu.user + cpu.system) / 1000 / wallMs;
      console.log(`${label(timed[i])} ctx ${ctx}, round ${round + 1}: ${ms.toFixed(2)} ms per decode step, CPU/wall ${busy.toFixed(2)} (${held.length} other session(s) held, ${threads} threads, spinning ${spinning}${gc ? ', collected before' : ''}${forced ? `, engine ${forced}` : ''})`);
    }
  }
  for (const s of [...sessions, ...holding]) await s.release();
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  console.log(`peak RSS of this process (VmHWM): ${hwm ? (Number(hwm[1]) / 1024).toFixed(0) + ' MiB' : 'unknown (no /proc)'}`);
})().catch((err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
