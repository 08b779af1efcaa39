// `w4a8 quantize` bad inputs through bin/w4a8.js: one clear error line, the documented exit
// code, and nothing written. Needs dist/ (`npx tsc -p tsconfig.build.json`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { saveModel } from '../../lib/onnx/model';
import { makeFloatTensorLike } from '../../lib/onnx/tensor';
import { CALIB_TEXT, EVAL_TEXT, STORIES_TOKENIZER, writeToyLm } from '../helpers/quant_fixtures';
import { assertBuiltCli } from '../helpers/built_cli';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const describeCli = describe;
beforeAll(assertBuiltCli);

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describeCli('w4a8 quantize (CLI)', () => {
  let dir: string;
  let toy: string;
  let outDir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-quantize-cli-'));
    toy = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: false });
    writeToyLm(path.join(dir, 'nan'), { dtype: 'float32', external: false, nanWeight: true });
    fs.writeFileSync(path.join(dir, 'empty.txt'), '\n\n  \n');
    // A "decoder" without any MatMul: logits = embedding rows.
    const noMatMul = makeModel(
      {
        name: 'no_matmul',
        nodes: [makeNode('Gather', ['embed', 'input_ids'], ['logits'])],
        inputs: [makeValueInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
        outputs: [makeValueInfo('logits', DataType.FLOAT, ['batch', 'seq', 512])],
        initializers: [makeFloatTensorLike('embed', DataType.FLOAT, [512, 512], new Float32Array(512 * 512).fill(0.25))],
      },
      [{ domain: '', version: 17 }],
    );
    fs.mkdirSync(path.join(dir, 'plain'));
    saveModel(noMatMul, path.join(dir, 'plain', 'model.onnx'));
    fs.copyFileSync(STORIES_TOKENIZER, path.join(dir, 'plain', 'tok512.bin'));
  });
  beforeEach(() => {
    outDir = fs.mkdtempSync(path.join(dir, 'out-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function expectFailure(r: ReturnType<typeof w4a8>, code: number, pattern: RegExp): void {
    expect(r.status).toBe(code);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(fs.readdirSync(outDir)).toEqual([]);
  }

  it('quantizes the toy model and prints a JSON summary with --json', () => {
    const out = path.join(outDir, 'q.onnx');
    const r = w4a8(['quantize', toy, '-o', out, '--method', 'awq', '--calib', CALIB_TEXT, '--calib-tokens', '1024', '--format', 'matmulnbits', '--json']);
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.layers).toHaveLength(3);
    expect(summary.layers[0]).toMatchObject({ name: 'q_proj/MatMul', method: 'awq', grouping: 'oc', groupSize: 32 });
    expect(typeof summary.layers[0].alpha).toBe('number');
    expect(fs.readdirSync(outDir).sort()).toEqual(['q.onnx', 'q.onnx.report.json', 'tok512.bin']);
  });
  it('keeps the logits layer in float by default, and quantizes it too with --no-keep-logits', () => {
    const kept = JSON.parse(w4a8(['quantize', toy, '-o', path.join(outDir, 'kept.onnx'), '--format', 'w4a8', '--json', '--quiet']).stdout);
    const all = JSON.parse(w4a8(['quantize', toy, '-o', path.join(outDir, 'all.onnx'), '--format', 'w4a8', '--no-keep-logits', '--json', '--quiet']).stdout);
    const names = (s: { layers: { name: string }[] }) => s.layers.map((l) => l.name);
    expect(kept.excluded).toEqual([{ name: 'lm_head/MatMul', reason: 'produces a graph output (logits)' }]);
    expect(all.excluded).toEqual([]);
    expect(names(all)).toEqual([...names(kept), 'lm_head/MatMul']);
  });
  it('--threads 1 and --threads 2 write the same model (GPTQ); a bad --threads exits 2', () => {
    const one = path.join(outDir, 't1', 'q.onnx');
    const two = path.join(outDir, 't2', 'q.onnx');
    for (const [out, threads] of [[one, '1'], [two, '2']]) {
      fs.mkdirSync(path.dirname(out), { recursive: true });
      const r = w4a8(['quantize', toy, '-o', out, '--method', 'gptq', '--calib', CALIB_TEXT, '--calib-tokens', '1024', '--threads', threads, '--json']);
      expect(r.status).toBe(0);
    }
    expect(fs.readFileSync(one).equals(fs.readFileSync(two))).toBe(true);
    fs.rmSync(path.join(outDir, 't1'), { recursive: true });
    fs.rmSync(path.join(outDir, 't2'), { recursive: true });
    expectFailure(w4a8(['quantize', toy, '-o', path.join(outDir, 'q.onnx'), '--threads', '0']), 2, /--threads must be an integer in 1\.\.1024, got 0/);
    expectFailure(w4a8(['quantize', toy, '-o', path.join(outDir, 'q.onnx'), '--threads', '1.5']), 2, /--threads must be an integer/);
  });
  it('refuses to overwrite the input (exit 2)', () => {
    expectFailure(w4a8(['quantize', toy, '-o', toy, '--calib', CALIB_TEXT]), 2, /is the input model/);
  });
  it('refuses an unknown method or format (exit 2)', () => {
    expectFailure(w4a8(['quantize', toy, '-o', path.join(outDir, 'q.onnx'), '--method', 'magic']), 2, /Invalid values[\s\S]*method/);
    expectFailure(w4a8(['quantize', toy, '-o', path.join(outDir, 'q.onnx'), '--format', 'gguf']), 2, /Invalid values[\s\S]*format/);
  });
  it('refuses a combination the export cannot carry, naming sim (exit 2)', () => {
    expectFailure(w4a8(['quantize', toy, '-o', path.join(outDir, 'q.onnx'), '--wformat', 'fp4', '--format', 'matmulnbits', '--calib', CALIB_TEXT]), 2, /--format sim/);
  });
  it('refuses an empty calibration text (exit 1)', () => {
    expectFailure(w4a8(['quantize', toy, '-o', path.join(outDir, 'q.onnx'), '--calib', path.join(dir, 'empty.txt')]), 1, /calibration text .*empty/);
  });
  it('refuses a model without a quantizable MatMul (exit 1)', () => {
    expectFailure(w4a8(['quantize', path.join(dir, 'plain', 'model.onnx'), '-o', path.join(outDir, 'q.onnx'), '--calib', CALIB_TEXT]), 1, /no quantizable MatMul/);
  });
  it('refuses NaN weights (exit 1)', () => {
    expectFailure(w4a8(['quantize', path.join(dir, 'nan', 'model.onnx'), '-o', path.join(outDir, 'q.onnx'), '--calib', CALIB_TEXT, '--calib-tokens', '256']), 1, /NaN\/Inf/);
  });
});

describeCli('w4a8 sweep (CLI)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-sweep-cli-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('evaluates a JSON grid and writes the table, the JSON and the SVG chart', () => {
    const toy = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: false });
    const configs = path.join(dir, 'grid.json');
    fs.writeFileSync(configs, JSON.stringify([{ method: 'rtn', aformat: 'none' }, { method: 'gptq', group: 0, sym: true, format: 'matmulnbits' }, { method: 'awq', wformat: 'fp4', aformat: 'fp8' }]));
    const out = path.join(dir, 'sweep');
    const r = w4a8(['sweep', toy, '--calib', CALIB_TEXT, '--eval', EVAL_TEXT, '--configs', configs, '--ctx', '64', '--max-tokens', '300', '--calib-tokens', '512', '--out', out, '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.baseline.tokens).toBe(300);
    expect(report.rows.map((x: { label: string; exportFormat: string }) => `${x.label} [${x.exportFormat}]`)).toEqual([
      'rtn int4-asym g32 A16 [sim]',
      'gptq int4-sym per-channel A8 int8 [matmulnbits]',
      'awq fp4 g32 A8 fp8 [sim]',
    ]);
    for (const row of report.rows) expect(Number.isFinite(row.ppl) && row.ppl > 1).toBe(true);
    expect(fs.readdirSync(out).sort()).toEqual(['sweep.json', 'sweep.md', 'sweep.svg']);
    expect(fs.readFileSync(path.join(out, 'sweep.md'), 'utf8')).toMatch(/\| gptq \| int4 sym \| per-channel \| oc \| int8 \| matmulnbits \|/);
    expect(fs.readFileSync(path.join(out, 'sweep.svg'), 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });
  it('refuses a grid entry the export cannot carry (exit 2)', () => {
    const configs = path.join(dir, 'bad.json');
    fs.writeFileSync(configs, JSON.stringify([{ method: 'rtn', wformat: 'fp4', format: 'qdq' }]));
    const r = w4a8(['sweep', path.join(dir, 'toy', 'model.onnx'), '--calib', CALIB_TEXT, '--eval', EVAL_TEXT, '--configs', configs, '--out', path.join(dir, 'bad')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--format sim/);
    expect(fs.existsSync(path.join(dir, 'bad'))).toBe(false);
  });
});
