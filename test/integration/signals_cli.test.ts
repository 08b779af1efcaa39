// Real signals at chosen points of a quantize run through bin/w4a8.js. The CLI sends itself the
// signal when it reaches the point named by W4A8_SIGNAL_AT (lib/util/cancel.ts signalPoint): before
// argument parsing, before the command body, once the output is staged, once the model is loaded.
// Each run must exit 130/143/129 with a last stderr line saying so, leave no staging folder or lock,
// and leave the output as it was (absent, or the previous set byte for byte); a second signal
// aborts at once and still removes what was staged. Needs dist/.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeToyLm } from '../helpers/quant_fixtures';
import { BIN, assertBuiltCli } from '../helpers/built_cli';

beforeAll(assertBuiltCli);

const CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
const POINTS = ['start', 'command', 'staged', 'model-loaded'] as const;

function snapshot(dir: string): Record<string, string> {
  if (!fs.existsSync(dir)) return {};
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    out[name] = fs.lstatSync(p).isFile() ? fs.readFileSync(p).toString('base64').slice(0, 64) + `:${fs.statSync(p).size}` : 'folder';
  }
  return out;
}

describe('signals at chosen points (CLI)', () => {
  let dir: string;
  let toy: string;
  const quantizeArgs = (out: string) => ['quantize', toy, '-o', out, '--method', 'rtn', '--format', 'matmulnbits', '--quiet'];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-signals-'));
    toy = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: true, dim: 64 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const cases: [string, keyof typeof CODES, number][] = [];
  for (const point of POINTS) {
    for (const sig of Object.keys(CODES) as (keyof typeof CODES)[]) cases.push([point, sig, 1]);
    cases.push([point, 'SIGTERM', 2]);
  }

  it.each(cases)('%s, %s x%d: exit 128+n, nothing staged left, the output as it was', (point, sig, times) => {
    // Half into a folder that does not exist yet (it must not exist afterwards), half over a previous set.
    const fresh = (POINTS.indexOf(point as (typeof POINTS)[number]) + times) % 2 === 0;
    const outDir = path.join(dir, `${point}-${sig}-${times}`);
    if (!fresh) {
      const first = spawnSync(process.execPath, [BIN, ...quantizeArgs(path.join(outDir, 'model.onnx'))], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      expect(first.stderr).toBe('');
      expect(first.status).toBe(0);
    }
    const before = snapshot(outDir);
    const r = spawnSync(process.execPath, [BIN, ...quantizeArgs(path.join(outDir, 'model.onnx'))], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', W4A8_SIGNAL_AT: `${point}:${sig}${times > 1 ? `*${times}` : ''}` },
      timeout: 60_000,
    });
    expect({ status: r.status, signal: r.signal }).toEqual({ status: CODES[sig], signal: null });
    const lines = r.stderr.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(sig === 'SIGINT' ? /^w4a8: error: interrupted \(Ctrl-C\)/ : new RegExp(`^w4a8: error: stopped by ${sig}`));
    if (times > 1) expect(lines[lines.length - 1]).toContain('aborted at once, staged files removed');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    if (fresh) expect(fs.existsSync(outDir)).toBe(false);
    else expect(snapshot(outDir)).toEqual(before);
  }, 120_000);

  // The fuzz harness once caught this: a signal after the output was committed exited 129 saying
  // "staged files removed" although the output stood complete.
  it.each(['SIGINT', 'SIGHUP'] as const)('%s after the command finished: its own exit code, the output complete', (sig) => {
    const outDir = path.join(dir, `finished-${sig}`);
    const plain = path.join(dir, `finished-plain-${sig}`);
    expect(spawnSync(process.execPath, [BIN, ...quantizeArgs(path.join(plain, 'model.onnx'))], { encoding: 'utf8' }).status).toBe(0);
    const r = spawnSync(process.execPath, [BIN, ...quantizeArgs(path.join(outDir, 'model.onnx'))], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', W4A8_SIGNAL_AT: `finished:${sig}` },
      timeout: 60_000,
    });
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    expect(r.stderr.trim()).toBe(`w4a8: warning: ${sig === 'SIGINT' ? 'Ctrl-C' : sig} after the command had finished: exiting with its own status (0)`);
    // The same files as an undisturbed run, byte for byte (the report names its own output path).
    const withoutReport = (d: string) => Object.fromEntries(Object.entries(snapshot(d)).filter(([name]) => !name.endsWith('.report.json')));
    expect(withoutReport(outDir)).toEqual(withoutReport(plain));
    expect(Object.keys(snapshot(outDir)).sort()).toEqual(Object.keys(snapshot(plain)).sort());
    expect(Object.keys(snapshot(outDir))).toContain('model.onnx');
  }, 120_000);

  it('SIGTERM after a failed command keeps the failure\'s exit code', () => {
    const r = spawnSync(process.execPath, [BIN, 'quantize', path.join(dir, 'missing.onnx'), '-o', path.join(dir, 'never', 'model.onnx'), '--method', 'rtn', '--quiet'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', W4A8_SIGNAL_AT: 'finished:SIGTERM' },
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBe(CODES.SIGTERM);
    const lines = r.stderr.trim().split('\n');
    expect(lines[lines.length - 1]).toBe(`w4a8: warning: SIGTERM after the command had finished: exiting with its own status (${r.status})`);
    expect(fs.existsSync(path.join(dir, 'never'))).toBe(false);
  }, 60_000);
});
