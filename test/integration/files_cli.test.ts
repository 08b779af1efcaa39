// The file rules through bin/w4a8.js: special files refused before reading, outputs created or
// refused before any work, one writer per output, and signals at random points (seeded; the
// seed is printed, W4A8_TEST_SEED replays it) that leave either the previous output set or the
// new one, whole, and no staging folder or lock. SIGKILL leaves at most a hidden staging folder
// (and a lock of a dead pid), which the next run removes. Needs dist/.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeToyLm } from '../helpers/quant_fixtures';
import { BIN, assertBuiltCli } from '../helpers/built_cli';
import { rng } from '../helpers/onnx_fixtures';
import { removeStaleStaging } from '../../lib/util/output_set';
import { ROOT } from '../helpers/built_cli';

beforeAll(assertBuiltCli);

const ENV = { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '' };

function w4a8(args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: ENV, cwd, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLine(stderr: string): void {
  expect(stderr.trim().split('\n')).toHaveLength(1);
  expect(stderr).toMatch(/^w4a8: error: /);
}

const SET = ['model.onnx', 'model.onnx.report.json', 'model.onnx_data', 'tok512.bin'];

/** The output folder's entries; the visible ones must be the whole set or nothing. */
function checkSet(dir: string): { hidden: string[]; visible: string[] } {
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  const visible = names.filter((n) => !n.startsWith('.'));
  const hidden = names.filter((n) => n.startsWith('.'));
  expect([[], SET]).toContainEqual(visible);
  return { hidden, visible };
}

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
}

describe('files (CLI)', () => {
  let dir: string;
  let toy: string;
  const quantizeArgs = (out: string) => ['quantize', toy, '-o', out, '--method', 'rtn', '--wformat', 'int4', '--group', '32', '--format', 'matmulnbits', '--quiet'];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-files-cli-'));
    // Wide enough that the work and write phases, not Node's start-up, fill most of a run.
    toy = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: true, dim: 512 });
    mkfifo(path.join(dir, 'fifo'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('inspect refuses /dev/zero and a FIFO with one line, at once (they used to hang)', () => {
    for (const f of ['/dev/zero', path.join(dir, 'fifo')]) {
      const r = w4a8(['inspect', f]);
      expect(r.status).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toMatch(/is a (character device|FIFO \(named pipe\)), not a regular file/);
    }
  });

  it('quantize refuses -o onto a FIFO, /dev/null, a folder or the input with one line (exit 2), before any work', () => {
    const fifo = path.join(dir, 'fifo');
    for (const [out, pattern] of [
      [fifo, /is a FIFO \(named pipe\); outputs replace only regular files/],
      ['/dev/null', /is a character device/],
      [path.join(dir, 'toy'), /is a folder; give a file path/],
      [toy, /is the input/],
    ] as const) {
      const r = w4a8(quantizeArgs(out));
      expect({ out, status: r.status }).toEqual({ out, status: 2 });
      oneLine(r.stderr);
      expect(r.stderr).toMatch(pattern);
    }
    // Any file of the set: the side file, the report, the tokenizer copy.
    for (const name of ['model.onnx_data', 'model.onnx.report.json', 'tok512.bin']) {
      const setDir = fs.mkdtempSync(path.join(dir, 'setfifo-'));
      mkfifo(path.join(setDir, name));
      const r = w4a8(quantizeArgs(path.join(setDir, 'model.onnx')));
      expect({ name, status: r.status }).toEqual({ name, status: 2 });
      oneLine(r.stderr);
      expect(r.stderr).toContain(`${name} exists and is a FIFO`);
      expect(fs.readdirSync(setDir)).toEqual([name]);
      expect(fs.lstatSync(path.join(setDir, name)).isFIFO()).toBe(true);
    }
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    expect(fs.lstatSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'toy')).sort()).toEqual(['model.onnx', 'model.onnx_data', 'tok512.bin']);
  });

  it('quantize creates missing output folders (mkdir -p) and refuses a path through a file', () => {
    const out = path.join(dir, 'new', 'a', 'b', 'model.onnx');
    const r = w4a8(quantizeArgs(out));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(checkSet(path.dirname(out))).toEqual({ hidden: [], visible: SET });
    const bad = w4a8(quantizeArgs(path.join(out, 'x', 'model.onnx')));
    expect(bad.status).toBe(2);
    oneLine(bad.stderr);
    expect(bad.stderr).toMatch(/a part of that path is a file/);
    // A run refused after the folders were made removes them again (they are empty).
    const refused = w4a8([...quantizeArgs(path.join(dir, 'new2', 'a', 'model.onnx')), '--calib', path.join(dir, 'fifo')]);
    expect(refused.status).toBe(1);
    oneLine(refused.stderr);
    expect(refused.stderr).toMatch(/text file .*fifo is a FIFO/);
    expect(fs.existsSync(path.join(dir, 'new2'))).toBe(false);
  });

  it('a second run on the same output refuses at once with one line naming the other process', () => {
    const out = path.join(dir, 'locked', 'model.onnx');
    fs.mkdirSync(path.dirname(out));
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      fs.writeFileSync(path.join(dir, 'locked', '.model.onnx.w4a8-lock'), `${holder.pid}\n`);
      const r = w4a8(quantizeArgs(out));
      expect(r.status).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toContain(`another w4a8 run (pid ${holder.pid}) is writing ${out}`);
      expect(fs.readdirSync(path.dirname(out))).toEqual(['.model.onnx.w4a8-lock']);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('processes racing for one output (a stale lock to take over in every other round): never two holders at once', async () => {
    // The lock used to be created empty and written afterwards: a racer reading it in between saw
    // pid 0 (dead) and took it over, and two racers taking over one stale lock could remove each
    // other's fresh lock. The same race, run by hand for 15 rounds, had two holders in 2 of them before the fix.
    // Later a run renaming away a fresh lock (read as stale a moment before) and putting it back let a
    // third run create its own in between: two holders in round 7 of one CI run. Takeovers now take
    // turns under a break lock.
    const holderScript = [
      `const { OutputSet } = require(${JSON.stringify(path.join(ROOT, 'dist', 'util', 'output_set.js'))});`,
      'const start = Number(process.argv[2]); while (Date.now() < start) {}',
      'try { const s = new OutputSet(process.argv[1]); const t0 = Date.now(); while (Date.now() < t0 + 250) {} console.log(`got ${t0} ${Date.now()}`); s.abort(); }',
      'catch (e) { console.log(`refused ${e.message.split("\\n")[0]}`); }',
    ].join('\n');
    for (let round = 0; round < 8; round++) {
      const d = path.join(dir, `race-${round}`);
      fs.mkdirSync(d);
      const out = path.join(d, 'm.onnx');
      if (round % 2 === 1) fs.writeFileSync(path.join(d, '.m.onnx.w4a8-lock'), '999999999\n'); // no such pid
      const start = Date.now() + 600;
      const runs = await Promise.all([0, 1, 2, 3].map(() => new Promise<string>((resolve) => {
        const child = spawn(process.execPath, ['-e', holderScript, out, String(start)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let stdout = '';
        child.stdout!.on('data', (b) => (stdout += String(b)));
        child.on('exit', () => resolve(stdout.trim()));
      })));
      const held = runs.filter((r) => r.startsWith('got ')).map((r) => r.split(' ').slice(1).map(Number));
      const refused = runs.filter((r) => r.startsWith('refused '));
      expect({ round, runs: held.length + refused.length }).toEqual({ round, runs: 4 });
      expect(refused.every((r) => /another w4a8 run( \(pid \d+\))? is (writing|starting to write)/.test(r))).toBe(true);
      // Holds may follow one another (a racer that came late), but never overlap.
      held.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < held.length; i++) expect({ round, overlap: held[i][0] < held[i - 1][1] }).toEqual({ round, overlap: false });
      expect(held.length).toBeGreaterThanOrEqual(1);
      expect(fs.readdirSync(d)).toEqual([]);
    }
  }, 120_000);

  async function runAndSignal(out: string, signals: NodeJS.Signals[], delayMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    const child: ChildProcess = spawn(process.execPath, [BIN, ...quantizeArgs(out)], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += String(d)));
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    await new Promise((r) => setTimeout(r, delayMs));
    for (const s of signals) child.kill(s);
    const { code, signal } = await done;
    return { code, signal, stderr };
  }

  it('SIGINT, SIGTERM and SIGHUP at random points leave the previous set or the new one, whole, and nothing staged', async () => {
    const seed = Number(process.env.W4A8_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`files_cli signals: seed ${seed} (W4A8_TEST_SEED=${seed} replays it)`);
    const next = rng(seed);
    const out = path.join(dir, 'signals', 'model.onnx');
    expect(w4a8(quantizeArgs(out)).status).toBe(0);
    // How long one run takes here, so that the random points cover all of it.
    const t0 = Date.now();
    expect(w4a8(quantizeArgs(out)).status).toBe(0);
    const span = Date.now() - t0;
    const t1 = Date.now();
    w4a8(['--version']);
    // A signal while Node itself starts, before the CLI installs its handlers, kills the process
    // by default (a shell reports 128+n then too): nothing is staged yet.
    const startup = Date.now() - t1;
    const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) {
      const sig = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const)[Math.floor(next() * 3)];
      const twice = next() < 0.25;
      const delay = Math.floor(startup + next() * (span - startup) * 1.1);
      const r = await runAndSignal(out, twice ? [sig, sig] : [sig], delay);
      const outcome = r.code === 0 ? 'finished' : r.code === codes[sig] ? 'stopped' : r.signal === sig ? 'killed outside the run' : `code ${r.code}`;
      seen.push(`${sig}${twice ? 'x2' : ''}@${delay}ms:${outcome}`);
      expect({ sig, delay, outcome, stderr: r.stderr }).toEqual({ sig, delay, outcome: expect.stringMatching(/^(finished|stopped|killed outside the run)$/), stderr: expect.anything() });
      if (outcome === 'stopped') expect(r.stderr).not.toMatch(/\n\s+at /);
      // The set is whole (the previous run's or this one's) and nothing hidden is left.
      expect(checkSet(path.dirname(out))).toEqual({ hidden: [], visible: SET });
      expect(w4a8(['inspect', out]).status).toBe(0);
    }
    console.log(`files_cli signals (one run ${span} ms, start-up ${startup} ms): ${seen.join(', ')}`);
  }, 240_000);

  it('SIGKILL leaves at most a hidden staging folder and a dead lock, which the next run removes', async () => {
    const seed = Number(process.env.W4A8_TEST_SEED ?? Date.now() % 1_000_000) + 1;
    console.log(`files_cli SIGKILL: seed ${seed}`);
    const next = rng(seed);
    const out = path.join(dir, 'killed', 'model.onnx');
    for (let i = 0; i < 4; i++) {
      const delay = 200 + Math.floor(next() * 1200);
      await runAndSignal(out, ['SIGKILL'], delay);
      const { hidden } = checkSet(path.dirname(out));
      for (const h of hidden) expect(h).toMatch(/^\.model\.onnx\.w4a8-(staging-\d+-\w+|lock)$/);
      const r = w4a8(quantizeArgs(out));
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(checkSet(path.dirname(out))).toEqual({ hidden: [], visible: SET });
    }
  }, 120_000);

  it('SIGKILL at every step of a swap: the next run puts the previous set back (or keeps the new one once the model is in)', () => {
    // A child writes a four-file set over a previous one and kills itself at one step.
    const child = `
      const { OutputSet, outputFaults } = require(${JSON.stringify(path.join(ROOT, 'dist', 'util', 'output_set.js'))});
      const fs = require('fs'), path = require('path');
      const [dir, step, tag] = process.argv.slice(1);
      outputFaults.hook = (s) => { if (s === step) process.kill(process.pid, 'SIGKILL'); };
      const out = new OutputSet(path.join(dir, 'm.onnx'));
      for (const n of ['m.onnx_data', 'tokenizer.json', 'm.onnx.report.json', 'm.onnx']) fs.writeFileSync(out.staged(out.add(path.join(dir, n))), tag + n);
      out.commit();`;
    const write = (d: string, step: string, tag: string) => spawnSync(process.execPath, ['-e', child, d, step, tag], { encoding: 'utf8' });
    const visible = (d: string) => Object.fromEntries(fs.readdirSync(d).filter((n) => !n.startsWith('.')).sort().map((n) => [n, fs.readFileSync(path.join(d, n), 'utf8')]));
    const steps = ['lock', 'staging', 'backup:m.onnx', 'backup:m.onnx_data', 'rename:m.onnx_data', 'backup:tokenizer.json', 'rename:tokenizer.json',
      'backup:m.onnx.report.json', 'rename:m.onnx.report.json', 'rename:m.onnx', 'cleanup'];
    for (const step of steps) {
      const d = fs.mkdtempSync(path.join(dir, 'kill-'));
      expect(write(d, 'none', 'old:').status).toBe(0);
      const before = visible(d);
      const killed = write(d, step, 'new:');
      expect({ step, signal: killed.signal }).toEqual({ step, signal: 'SIGKILL' });
      removeStaleStaging(path.join(d, 'm.onnx'));
      const after = visible(d);
      if (step === 'cleanup') expect(Object.values(after).every((v) => v.startsWith('new:'))).toBe(true);
      else expect({ step, after }).toEqual({ step, after: before });
      expect(Object.keys(after)).toHaveLength(4);
      for (const h of fs.readdirSync(d).filter((n) => n.startsWith('.'))) expect(h).toBe('.m.onnx.w4a8-lock');
      expect(write(d, 'none', 'next:').status).toBe(0); // the dead lock is taken over
      expect(Object.values(visible(d)).every((v) => v.startsWith('next:'))).toBe(true);
      expect(fs.readdirSync(d).filter((n) => n.startsWith('.'))).toEqual([]);
    }
  });
});
