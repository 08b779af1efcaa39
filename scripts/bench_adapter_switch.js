#!/usr/bin/env node
// Per-run cost of choosing an adapter on one W4A8 session (lib/export/adapter_slots.ts): one
// com.w4a8.W4A8MatMul layer (K x N, int4 asym g128, int8 activations) with a low-rank adapter at a
// parameter budget, run at M = 1 and M = 128 as
//   base        no adapter
//   attached    the adapter's fp16 factors as constant initializers (converted once at load)
//   default     the serving model (factors exposed as overridable inputs), nothing fed
//   fed fp16    the serving model, another adapter fed every run (two adapters alternating)
//   fed fp32    the same with fp32 factors, which the op reads in place
// Variants interleave within each round; medians per run and the cost over `attached` are printed.
// Needs dist/ (npx tsc -p tsconfig.build.json) and the addon (W4A8_ADDON or build/addon).
// usage: node scripts/bench_adapter_switch.js [--shape KxN] [--budget 0.05] [--rounds 15] [--json]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const ort = require('onnxruntime-node');
const { makeModel, makeNode, makeValueInfo } = require('../dist/onnx/build');
const { makeTensor } = require('../dist/onnx/tensor');
const { saveModel } = require('../dist/onnx/model');
const { DataType } = require('../dist/onnx/dtype');
const { attachFusedFactors, exposeAdapterInputs, adapterFeeds, w4a8MatMulNodes } = require('../dist/export/adapter_slots');
const { openW4A8Session } = require('../dist/ort/engine_session');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const [K, N] = arg('--shape', '4096x4096').split('x').map(Number);
const budget = Number(arg('--budget', '0.05'));
const rounds = Number(arg('--rounds', '15'));
const json = process.argv.includes('--json');
if (!(K >= 16 && N >= 1 && K % 128 === 0 && budget > 0 && budget < 1 && rounds >= 1)) {
  console.error('usage: node scripts/bench_adapter_switch.js [--shape KxN (K a multiple of 128)] [--budget F] [--rounds R] [--json]');
  process.exit(2);
}
const rank = Math.max(1, Math.floor((budget * K * N) / (K + N)));
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const randomFloats = (count, scale) => Float32Array.from({ length: count }, () => (rand() * 2 - 1) * scale);

function baseModel() {
  const group = 128, blocks = K / group;
  const codes = new Uint8Array(N * blocks * (group / 2)).map(() => (rand() * 256) | 0);
  const scales = new Float32Array(N * blocks).fill(0.01);
  const zps = new Uint8Array(N * Math.ceil(blocks / 2)).fill(0x88);
  const node = makeNode('W4A8MatMul', ['A', 'codes', 'scales', 'zps'], ['Y'],
    { K, N, bits: 4, block_size: group, weight_format: 'int4', activation_format: 'int8' }, { name: 'layer', domain: 'com.w4a8' });
  return makeModel({
    name: 'adapter_switch', nodes: [node],
    inputs: [makeValueInfo('A', DataType.FLOAT, ['rows', K])], outputs: [makeValueInfo('Y', DataType.FLOAT, ['rows', N])],
    initializers: [makeTensor('codes', DataType.UINT8, [N, blocks, group / 2], codes), makeTensor('scales', DataType.FLOAT, [N * blocks], scales),
      makeTensor('zps', DataType.UINT8, [zps.length], zps)],
  }, [{ domain: '', version: 17 }, { domain: 'com.w4a8', version: 1 }]);
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-adapter-switch-'));
  try {
    const adapters = [0, 1].map(() => new Map([['layer', { lowRank: { rank, u: randomFloats(K * rank, 0.02), v: randomFloats(rank * N, 0.02) } }]]));
    const write = (name, edit) => {
      const m = baseModel();
      if (edit) edit(m);
      const file = path.join(dir, `${name}.onnx`);
      saveModel(m, file);
      return file;
    };
    let slots16, slots32;
    const files = {
      base: write('base'),
      attached: write('attached', (m) => attachFusedFactors(m, w4a8MatMulNodes(m)[0], adapters[0].get('layer'), 'layer/adapter')),
      serving16: write('serving16', (m) => { attachFusedFactors(m, w4a8MatMulNodes(m)[0], adapters[0].get('layer'), 'layer/adapter'); slots16 = exposeAdapterInputs(m); }),
      serving32: write('serving32', (m) => { attachFusedFactors(m, w4a8MatMulNodes(m)[0], adapters[0].get('layer'), 'layer/adapter', 'float32'); slots32 = exposeAdapterInputs(m); }),
    };
    const tensors = (slots, which) => Object.fromEntries(Object.entries(adapterFeeds(slots, adapters[which])).map(([n, f]) => [n, new ort.Tensor(f.type, f.data, f.dims)]));
    const feeds16 = [tensors(slots16, 0), tensors(slots16, 1)], feeds32 = [tensors(slots32, 0), tensors(slots32, 1)];
    const sessions = {};
    for (const [k, f] of Object.entries(files)) sessions[k] = await openW4A8Session(f);
    const variants = [
      ['base', sessions.base, () => ({})],
      ['attached', sessions.attached, () => ({})],
      ['default', sessions.serving16, () => ({})],
      ['fed fp16', sessions.serving16, (i) => feeds16[i % 2]],
      ['fed fp32', sessions.serving32, (i) => feeds32[i % 2]],
    ];
    const rows = [];
    for (const m of [1, 128]) {
      const a = new ort.Tensor('float32', randomFloats(m * K, 1), [m, K]);
      const calls = m === 1 ? 20 : 3;
      const times = variants.map(() => []);
      for (let r = 0; r <= rounds; r++) {
        for (let v = 0; v < variants.length; v++) {
          const [, s, extra] = variants[v];
          const t0 = process.hrtime.bigint();
          for (let c = 0; c < calls; c++) await s.run({ A: a, ...extra(c) }, ['Y']);
          if (r > 0) times[v].push(Number(process.hrtime.bigint() - t0) / 1e3 / calls);
        }
      }
      const median = (x) => [...x].sort((p, q) => p - q)[x.length >> 1];
      const att = median(times[1]);
      variants.forEach(([name], v) => rows.push({ k: K, n: N, m, rank, variant: name, median_us: median(times[v]), vs_attached_us: median(times[v]) - att }));
    }
    for (const s of Object.values(sessions)) await s.release();
    if (json) console.log(JSON.stringify({ cpus: os.cpus().length, cpu: os.cpus()[0]?.model, rows }, null, 1));
    else {
      console.log(`one W4A8MatMul K ${K} N ${N}, low-rank adapter rank ${rank} (${budget} of K*N), ${rounds} rounds, medians per run; ${os.cpus()[0]?.model}, ${os.cpus().length} cpus`);
      for (const r of rows) console.log(`M ${String(r.m).padStart(3)}  ${r.variant.padEnd(9)} ${r.median_us.toFixed(0).padStart(8)} us  ${r.vs_attached_us >= 0 ? '+' : ''}${r.vs_attached_us.toFixed(0)} us vs attached`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e.message ?? e); process.exit(1); });
