#!/usr/bin/env node
// `npm run bench [-- cpu|quant|e2e|e2e-avx2|all] [-- bench options]`: runs `w4a8 bench <target> --json` for
// each target (progress on stderr) and writes the generated blocks of docs/BENCHMARKS.md from the
// reports. e2e runs once per model of E2E_RUNS (scripts/docs/bench_e2e_doc.js). e2e-avx2 (not part of
// all) is the AVX2-only stand-in on a machine with AVX-512: it writes build/ort-avx2/libonnxruntime.so.1
// (scripts/ort-avx2-library.js) and runs E2E_AVX2_RUN with W4A8_ISA=avx2 and W4A8_ORT_LIBRARY set to it.
// Options after the target go to the bench command unchanged (e.g. --quick, --threads 2),
// except --doc FILE, the markdown file to update (default docs/BENCHMARKS.md).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { writeBlocks } = require('./docs/doc_blocks');
const { cpuBlocks, quantBlocks } = require('./docs/bench_doc');
const { E2E_RUNS, E2E_AVX2_RUN, e2eBlocks, e2eAvx2Blocks } = require('./docs/bench_e2e_doc');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const target = ['cpu', 'quant', 'e2e', 'e2e-avx2', 'all'].includes(args[0]) ? args.shift() : 'all';
let doc = path.join(root, 'docs', 'BENCHMARKS.md');
const docAt = args.indexOf('--doc');
if (docAt >= 0) {
  if (docAt + 1 >= args.length) {
    process.stderr.write('bench: --doc needs a file\n');
    process.exit(2);
  }
  doc = path.resolve(args[docAt + 1]);
  args.splice(docAt, 2);
}

function run(which, extra = [], env = {}) {
  const cliArgs = ['bench', which, ...extra, ...args];
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'w4a8.js'), ...cliArgs, '--json'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['inherit', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) {
    process.stderr.write(`bench: w4a8 ${cliArgs.join(' ')} exited ${r.status ?? r.signal}; docs unchanged\n`);
    process.exit(r.status === 130 ? 130 : 1);
  }
  const prefix = Object.entries(env).map(([k, v]) => `${k}=${v} `).join('');
  return { report: JSON.parse(r.stdout), command: `${prefix}w4a8 ${cliArgs.join(' ')}` };
}

// ONNX Runtime takes its AVX-512 kernels wherever the CPU has AVX-512F; without it there is nothing to stand in for.
function hasAvx512() {
  try {
    return /^flags\s*:.*\bavx512f\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

function runAvx2StandIn() {
  if (!hasAvx512()) {
    process.stderr.write('bench: this CPU has no AVX-512, so ONNX Runtime already runs its AVX2 kernels: `npm run bench -- e2e` measures AVX2 on both sides here\n');
    process.exit(2);
  }
  const rel = path.join('build', 'ort-avx2', 'libonnxruntime.so.1');
  const made = spawnSync(process.execPath, [path.join(root, 'scripts', 'ort-avx2-library.js'), '--out', path.join(root, rel)], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (made.status !== 0) {
    process.stderr.write('bench: could not write the AVX2 copy of ONNX Runtime (above); docs unchanged\n');
    process.exit(1);
  }
  const r = E2E_AVX2_RUN;
  return run('e2e', ['--model', r.model, '--prompt-tokens', r.promptTokens, '--new-tokens', String(r.newTokens)], { W4A8_ISA: 'avx2', W4A8_ORT_LIBRARY: rel });
}

for (const which of target === 'all' ? ['cpu', 'quant', 'e2e'] : [target]) {
  if (which === 'e2e-avx2') {
    writeBlocks(doc, e2eAvx2Blocks(runAvx2StandIn(), new Date()));
    process.stderr.write(`wrote the e2e-avx2 block of ${path.relative(process.cwd(), doc) || doc}\n`);
    continue;
  }
  if (which === 'e2e') {
    const reports = E2E_RUNS.map((r) => run('e2e', ['--model', r.model, '--prompt-tokens', r.promptTokens, '--new-tokens', String(r.newTokens)]));
    writeBlocks(doc, e2eBlocks(reports, new Date()));
    process.stderr.write(`wrote the e2e blocks of ${path.relative(process.cwd(), doc) || doc}\n`);
    continue;
  }
  const { report, command } = run(which);
  writeBlocks(doc, which === 'cpu' ? cpuBlocks(report, command, new Date()) : quantBlocks(report, command, new Date()));
  process.stderr.write(`wrote the ${which} blocks of ${path.relative(process.cwd(), doc) || doc}\n`);
}
