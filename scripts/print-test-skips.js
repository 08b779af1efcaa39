#!/usr/bin/env node
'use strict';
// ctest shows a skipped test as "Skipped" without its reason; each of our test executables prints
// "SKIP: <reason>" before exiting 77 (or for a skipped sub-case). Print those lines after the run.
const fs = require('node:fs');
const path = require('node:path');

const log = path.join(process.argv[2] || 'build/native', 'Testing', 'Temporary', 'LastTest.log');
if (!fs.existsSync(log)) process.exit(0);
let current = '';
const reasons = [];
for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
  const start = /^\d+\/\d+ Testing: (.+)$/.exec(line);
  if (start) current = start[1];
  const skip = /SKIP:\s*(.*)$/.exec(line);
  if (skip) reasons.push(`${current}: ${skip[1]}`);
}
if (reasons.length > 0) {
  console.log('Skipped native tests and sub-cases, with their reasons:');
  for (const r of [...new Set(reasons)]) console.log(`  ${r}`);
}
