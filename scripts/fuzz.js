#!/usr/bin/env node
// npm run fuzz -- --minutes N [--seed S] [--report file.json]: the CLI fuzz test of `npm test`
// (test/integration/fuzz_cli.test.ts) run for N minutes with a fresh random seed (or --seed S) and
// no cap on mutants, instead of npm test's fixed seed and 80 mutants.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const args = process.argv.slice(2);
const value = (flag) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const minutes = Number(value('--minutes') ?? 5);
if (!(minutes > 0 && minutes <= 24 * 60)) {
  process.stderr.write(`--minutes must be a number in (0, 1440], got ${value('--minutes')}\n`);
  process.exit(2);
}
const env = { ...process.env, W4A8_FUZZ_SECONDS: String(Math.round(minutes * 60)), W4A8_FUZZ_MUTANTS: 'Infinity', W4A8_FUZZ_SEED: value('--seed') ?? 'random' };
if (value('--report') !== undefined) env.W4A8_FUZZ_REPORT = path.resolve(value('--report'));
const root = path.resolve(__dirname, '..');
const jest = require.resolve('jest/bin/jest', { paths: [root] });
const r = spawnSync(process.execPath, [jest, 'test/integration/fuzz_cli.test.ts', '--verbose'], { stdio: 'inherit', env, cwd: root });
process.exit(r.status ?? 1);
