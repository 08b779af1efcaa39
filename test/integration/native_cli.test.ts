// `w4a8 quantize --format w4a8` and `w4a8 bench quant` through bin/w4a8.js: exit codes, refusals
// that name the fix, and nothing written on failure. Needs dist/ (`npx tsc -p tsconfig.build.json`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../lib/onnx/model';
import { writeToyLm } from '../helpers/quant_fixtures';
import { assertBuiltCli } from '../helpers/built_cli';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const describeCli = describe;
beforeAll(assertBuiltCli);

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describeCli('CLI: --format w4a8 and bench quant', () => {
  let dir: string;
  let toy: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-native-cli-'));
    toy = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: false });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('quantize --format w4a8 writes an ONNX model with one com.w4a8.W4A8MatMul per layer', () => {
    const out = path.join(dir, 'toy-w4a8.onnx');
    const r = w4a8(['quantize', toy, '-o', out, '--format', 'w4a8', '--group', '32']);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--format w4a8');
    const proto = loadModel(out).proto;
    expect(proto.opsetImport.some((o) => o.domain === 'com.w4a8')).toBe(true);
    expect(proto.graph!.node.filter((n) => n.domain === 'com.w4a8' && n.opType === 'W4A8MatMul')).toHaveLength(3);
  }, 60_000);

  it('quantize --format w4a8 --grouping ic exits 2 naming --format sim and writes nothing', () => {
    const out = path.join(dir, 'ic-w4a8.onnx');
    const r = w4a8(['quantize', toy, '-o', out, '--format', 'w4a8', '--grouping', 'ic']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--format w4a8 cannot carry --grouping ic.*--format sim/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('bench quant --json on a small layer lists every step; bad options exit 2', () => {
    const r = w4a8(['bench', 'quant', '--hidden', '256', '--intermediate', '384', '--tokens', '128', '--awq-rows', '32', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.rows).toHaveLength(4 + 7 + 2 * 4 + 7);
    expect(report.command).toContain('bench quant');
    const only = JSON.parse(w4a8(['bench', 'quant', '--hidden', '256', '--intermediate', '384', '--tokens', '128', '--awq-rows', '32', '--aformat', 'none', '--json']).stdout);
    expect(only.rows.filter((x: { step: string }) => x.step === 'awq').map((x: { aformat: string }) => x.aformat)).toEqual(['none', 'none', 'none', 'none']);
    const bad = w4a8(['bench', 'quant', '--tokens', '128', '--awq-rows', '4096']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--awq-rows must be an integer in 16\.\.128/);
  }, 120_000);

  it('bench all runs cpu then quant (one JSON object with both)', () => {
    const r = w4a8(['bench', 'all', '--shapes', '256x256', '--m', '1', '--rounds', '1', '--set-mb', '1', '--batch-ms', '1',
      '--hidden', '256', '--intermediate', '384', '--tokens', '128', '--awq-rows', '32', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(Object.keys(report)).toEqual(['cpu', 'quant']);
    expect(report.cpu.results.length).toBeGreaterThan(0);
    expect(report.quant.rows).toHaveLength(26);
    // Progress on stderr: the CPU benchmark's phases end before the quantization one starts.
    expect(r.stderr.indexOf('bench quant')).toBeGreaterThan(0);
  }, 120_000);
});
