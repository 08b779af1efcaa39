#!/usr/bin/env node
'use strict';
// ctest shows a skipped test as "Skipped" without its reason, and says nothing of a path a passing
// test could not run (an ISA the CPU lacks). Every native test prints such a case as one line that
// starts with "SKIP: <what> (<why>)" (whole tests then exit 77). This prints all of them, per test,
// after the run: usage `node scripts/print-test-skips.js [build dir]` (default build/native).
const fs = require('node:fs');
const path = require('node:path');

const log = path.join(process.argv[2] || 'build/native', 'Testing', 'Temporary', 'LastTest.log');
if (!fs.existsSync(log)) process.exit(0);
let current = '';
const reasons = [];
for (const line of fs.readFileSync(log, 'utf8').split(/\r?\n/)) {
  const start = /^\d+\/\d+ Testing: (.+)$/.exec(line);
  if (start) current = start[1];
  const skip = /^\s*SKIP:\s*(.*?)\s*$/.exec(line);
  if (skip) reasons.push(`${current || '(unknown test)'}: ${skip[1]}`);
}
if (reasons.length > 0) {
  console.log('Skipped native tests and sub-cases, with their reasons:');
  for (const r of [...new Set(reasons)]) console.log(`  ${r}`);
}
