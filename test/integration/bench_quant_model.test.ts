// `w4a8 bench quant --model`: a whole model quantized once per method, each in its own child process
// (its own peak RSS), through the CLI; the generated preset and the outputs are removed afterwards.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BIN, assertBuiltCli } from '../helpers/built_cli';
import { CALIB_TEXT } from '../helpers/quant_fixtures';

const missing = [CALIB_TEXT].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`bench quant --model tests skipped: missing ${missing.join(', ')}`);
const describeIf = missing.length === 0 ? describe : describe.skip;

describeIf('bench quant --model', () => {
  beforeAll(assertBuiltCli);

  test('quantizes the tiny-260k preset (fp16) with RTN and GPTQ, reporting wall time and peak RSS per method, runs each result in ORT, and leaves nothing behind', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-bench-quant-model-test-'));
    try {
      const r = spawnSync(process.execPath, [BIN, 'bench', 'quant', '--model', 'tiny-260k', '--dtype', 'float16', '--layers', '2', '--methods', 'rtn,gptq', '--tokens', '512', '--calib', CALIB_TEXT, '--json', '--quiet'],
        { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp, NO_COLOR: '1' }, timeout: 300_000 });
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.status).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report.model).toBe('tiny-260k (random weights, float16, 2 layers)');
      expect(report.rows.map((x: { method: string }) => x.method)).toEqual(['rtn', 'gptq']);
      const [rtn, gptq] = report.rows;
      // 7 linear layers per block; the logits projection stays in float by default.
      for (const x of report.rows) {
        expect(x.layers).toBe(14);
        expect(x.wallSeconds).toBeGreaterThan(0);
        // A child's own peak: at least Node's baseline, far below anything a 1 MB model could need.
        expect(x.peakRssMb).toBeGreaterThan(30);
        expect(x.peakRssMb).toBeLessThan(2000);
        expect(x.outputMb).toBeGreaterThanOrEqual(0);
        // The quantized model ran in ONNX Runtime: a greedy generation of up to 4 tokens (seed 0 weights).
        expect(x.ortCheck.newTokens).toBeGreaterThanOrEqual(1);
        expect(x.ortCheck.newTokens).toBeLessThanOrEqual(4);
        expect(x.ortCheck.seconds).toBeGreaterThan(0);
      }
      expect(rtn.calibMode).toBeUndefined();
      expect(gptq.calibMode).toBe('all');
      expect(gptq.calibTokens).toBe(512);
      expect(fs.readdirSync(tmp).filter((f) => f.startsWith('w4a8-bench-quant-'))).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 300_000);

  test('refuses an unknown method and a missing model before any work', () => {
    const bad = spawnSync(process.execPath, [BIN, 'bench', 'quant', '--model', 'tiny-260k', '--methods', 'rtn,smoothquant'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--methods: "smoothquant" is not one of rtn, awq, gptq/);
    const none = spawnSync(process.execPath, [BIN, 'bench', 'quant', '--model', '/nonexistent/model.onnx', '--methods', 'rtn'], { encoding: 'utf8' });
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/neither a preset .* nor an existing file/);
    const dtype = spawnSync(process.execPath, [BIN, 'bench', 'quant', '--dtype', 'float16'], { encoding: 'utf8' });
    expect(dtype.status).toBe(2);
    expect(dtype.stderr).toMatch(/--dtype goes with bench quant --model <preset>/);
  });
});
