// The CLI tests spawn bin/w4a8.js, which runs dist/. `npm test` compiles dist first (pretest); a
// missing or stale dist/ fails these tests with the fix, instead of testing an old build or skipping.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'w4a8.js');

function newestMtime(dir: string, ext: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p, ext));
    else if (entry.name.endsWith(ext)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Throws unless dist/ exists and is at least as new as every lib/ source. */
export function assertBuiltCli(): void {
  const main = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build:ts\` (npm test does it in pretest)`);
  const built = newestMtime(path.join(ROOT, 'dist'), '.js');
  const source = newestMtime(path.join(ROOT, 'lib'), '.ts');
  if (built < source) throw new Error('dist/ is older than lib/: run `npm run build:ts` (npm test does it in pretest)');
}

/** Runs bin/w4a8.js with `args` (colors off, `env` added to this process's): exit status and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
