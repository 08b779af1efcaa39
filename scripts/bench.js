#!/usr/bin/env node
// `npm run bench [-- cpu|quant|e2e|all] [-- bench options]`: runs `w4a8 bench <target> --json` for each
// target (progress on stderr) and writes the generated blocks of docs/BENCHMARKS.md from the
// reports. e2e runs once per model of E2E_RUNS (scripts/docs/bench_e2e_doc.js). Options after the target go to the bench command unchanged (e.g. --quick, --threads 2),
// except --doc FILE, the markdown file to update (default docs/BENCHMARKS.md).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { writeBlocks } = require('./docs/doc_blocks');
const { cpuBlocks, quantBlocks } = require('./docs/bench_doc');
const { E2E_RUNS, e2eBlocks } = require('./docs/bench_e2e_doc');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const target = ['cpu', 'quant', 'e2e', 'all'].includes(args[0]) ? args.shift() : 'all';
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

function run(which, extra = []) {
  const cliArgs = ['bench', which, ...extra, ...args];
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'w4a8.js'), ...cliArgs, '--json'], {
    cwd: root,
    stdio: ['inherit', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) {
    process.stderr.write(`bench: w4a8 ${cliArgs.join(' ')} exited ${r.status ?? r.signal}; docs unchanged\n`);
    process.exit(r.status === 130 ? 130 : 1);
  }
  return { report: JSON.parse(r.stdout), command: `w4a8 ${cliArgs.join(' ')}` };
}

for (const which of target === 'all' ? ['cpu', 'quant', 'e2e'] : [target]) {
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
