// Sequential (block by block) calibration on stories260K: block 0 sees exactly the inputs of the
// all-at-once capture, so its statistics must equal those; every later block runs on the quantized
// prefix, so its statistics must differ. The quantized model must be valid and close to fp32, the
// streamed path (external data in) must give the same quantization as the inline one, and a model
// whose node names carry no block index is refused (asked for) or calibrated all at once (default).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { importLlama2c } from '../../lib/import/llama2c';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { planLayers } from '../../lib/quant/plan';
import { resolveConfig } from '../../lib/quant/config';
import { loadTokenizer } from '../../lib/tokenize/load';
import type { CalibStats } from '../../lib/native/calib_stats';
import { calibrate, calibrationWindowsFor } from '../../lib/pipeline/calibrate';
import { blocksOf, quantizeSequential } from '../../lib/pipeline/sequential';
import { checkQuantizeArgs, quantizeModel } from '../../lib/pipeline/quantize';
import { openDecoder } from '../../lib/ort/session';
import { UsageError } from '../../lib/util/errors';
import { collectGarbage } from '../../lib/util/gc';
import type { Progress } from '../../lib/util/progress';
import { SHARED_DIR } from '../helpers/shared_paths';
import { BIN, assertBuiltCli } from '../helpers/built_cli';
import { spawnSync } from 'node:child_process';
import { CALIB_TEXT, STORIES_TOKENIZER, writeToyLm } from '../helpers/quant_fixtures';

const STORIES_BIN = path.join(SHARED_DIR, 'models', 'stories260K', 'stories260K.bin');
const missing = [STORIES_BIN, STORIES_TOKENIZER, CALIB_TEXT].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`sequential calibration tests skipped: missing ${missing.join(', ')}`);
const describeIf = missing.length === 0 ? describe : describe.skip;

/** max |a - b| / max |b| over the whole matrix. */
function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

describeIf('sequential calibration (stories260K)', () => {
  let dir: string;
  let modelPath: string;
  const calibText = () => fs.readFileSync(CALIB_TEXT, 'utf8');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-sequential-'));
    modelPath = (await importLlama2c(STORIES_BIN, STORIES_TOKENIZER, path.join(dir, 'fp32'))).modelPath;
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('block 0 statistics equal the all-at-once ones; later blocks see the quantized prefix', async () => {
    const model = loadModel(modelPath);
    const plan = planLayers(model, [], true);
    const split = blocksOf(model, plan, 'stories260K');
    if ('refused' in split) throw new Error(split.refused);
    expect(split.stages.map((s) => s.block)).toEqual([0, 1, 2, 3, 4]);
    // Each block captures its q/k/v, o, gate/up and down inputs: 4 per block.
    expect(split.stages.map((s) => s.targets.length)).toEqual([4, 4, 4, 4, 4]);

    const opts = { text: calibText(), label: 'calib.txt', tokenizer: loadTokenizer(STORIES_TOKENIZER), seqlen: 256, tokens: 1024 };
    const all = await calibrate(model, plan, { ...opts, hessian: true });
    const { windows } = calibrationWindowsFor(model, opts);
    const sequential = new Map<string, { block?: number; stats: CalibStats }>();
    const config = resolveConfig({ method: 'gptq', groupSize: 32, symmetric: false, aformat: 'int8' });
    const parts = await quantizeSequential(model, model, plan, split, {
      config,
      format: 'sim',
      windows,
      hessian: true,
      onStats: (stage, stats) => stats.forEach((s, input) => sequential.set(input, { block: stage.block, stats: s })),
    });
    expect(parts.layers.map((q) => q.layer.name)).toEqual(plan.layers.map((l) => l.name));
    expect(sequential.size).toBe(all.stats.size);
    for (const [input, { block, stats }] of sequential) {
      const reference = all.stats.get(input)!;
      expect(stats.rows).toBe(reference.rows);
      const d = relativeDifference(stats.hessian!, reference.hessian!);
      const m = relativeDifference(stats.meanAbs, reference.meanAbs);
      console.log(`block ${block} ${input}: Hessian relative difference ${d.toExponential(3)}, mean|x| ${m.toExponential(3)}`);
      if (block === 0) {
        expect(d).toBeLessThan(1e-6);
        expect(m).toBeLessThan(1e-6);
      } else {
        expect(d).toBeGreaterThan(1e-4);
      }
    }
  });

  test('a block\'s statistics are unreachable once its layers are quantized: the next capture does not hold them', async () => {
    // The memory bound of sequential calibration: one chunk's Hessians at a time. Each chunk's
    // statistics are watched through WeakRefs; when the next capture starts (its progress phase),
    // a full collection must have freed every earlier one.
    const model = loadModel(modelPath);
    const plan = planLayers(model, [], true);
    const split = blocksOf(model, plan, 'stories260K');
    if ('refused' in split) throw new Error(split.refused);
    const opts = { text: calibText(), label: 'calib.txt', tokenizer: loadTokenizer(STORIES_TOKENIZER), seqlen: 256, tokens: 512 };
    const { windows } = calibrationWindowsFor(model, opts);
    const watched: WeakRef<Float64Array | Float32Array>[] = [];
    const stillAlive: number[] = [];
    const progress: Progress = {
      start: (phase) => {
        if (!phase.includes('calibration')) return;
        collectGarbage();
        stillAlive.push(watched.filter((r) => r.deref() !== undefined).length);
      },
      update: () => undefined,
      stop: () => undefined,
      log: () => undefined,
    };
    await quantizeSequential(model, model, plan, split, {
      config: resolveConfig({ method: 'gptq', groupSize: 32, symmetric: false, aformat: 'int8' }),
      format: 'sim',
      windows,
      hessian: true,
      progress,
      onStats: (_stage, stats) => stats.forEach((s) => watched.push(new WeakRef(s.hessian!))),
    });
    // One capture per block (the statistics fit the budget); the first one has nothing to watch yet.
    expect(stillAlive.length).toBe(split.stages.length);
    expect(watched.length).toBe(plan.groups.length);
    expect(stillAlive).toEqual(stillAlive.map(() => 0));
  });

  test('quantize --calib-mode sequential: a valid model, the same with external data in (streamed) as inline', async () => {
    // The same model with its weights in a side file: the streamed path (blocks cut from a second copy).
    const extDir = path.join(dir, 'external');
    fs.mkdirSync(extDir);
    const extPath = path.join(extDir, 'model.onnx');
    saveModel(loadModel(modelPath), extPath, { externalData: 'always' });
    fs.copyFileSync(STORIES_TOKENIZER, path.join(extDir, path.basename(STORIES_TOKENIZER)));

    const run = (input: string, name: string) =>
      quantizeModel({ input, output: path.join(dir, name, 'model.onnx'), method: 'awq', groupSize: 32, symmetric: false, aformat: 'int8',
        format: 'matmulnbits', calibText: calibText(), calibTokens: 1024, calibSeqlen: 256, calibMode: 'sequential' });
    const inline = await run(modelPath, 'seq-inline');
    const streamed = await run(extPath, 'seq-external');
    expect(inline.calibMode).toBe('sequential');
    expect(streamed.calibMode).toBe('sequential');
    expect(streamed.layers.map((l) => l.errorAfter)).toEqual(inline.layers.map((l) => l.errorAfter));
    expect(streamed.layers.map((l) => l.alpha)).toEqual(inline.layers.map((l) => l.alpha));
    expect(fs.existsSync(path.join(dir, 'seq-external', 'model.onnx_data'))).toBe(true);

    // Runs in ONNX Runtime, as close to the float model as the all-at-once quantization of the same configuration.
    const all = await quantizeModel({ input: modelPath, output: path.join(dir, 'all-inline', 'model.onnx'), method: 'awq', groupSize: 32, symmetric: false,
      aformat: 'int8', format: 'matmulnbits', calibText: calibText(), calibTokens: 1024, calibSeqlen: 256, calibMode: 'all' });
    expect(all.calibMode).toBe('all');
    const ids = loadTokenizer(STORIES_TOKENIZER).encode('Once upon a time, there was a little girl named Lily. She liked to play outside.', { bos: true });
    const distance = async (quantized: string, reference: Float32Array): Promise<number> => {
      const s = await openDecoder(quantized);
      try {
        const b = (await s.logits(ids)).data as Float32Array;
        expect(b.every(Number.isFinite)).toBe(true);
        let num = 0;
        let den = 0;
        for (let i = 0; i < reference.length; i++) {
          num += (b[i] - reference[i]) ** 2;
          den += reference[i] ** 2;
        }
        return Math.sqrt(num / den);
      } finally {
        await s.release();
      }
    };
    const fp32 = await openDecoder(modelPath);
    const reference = new Float32Array((await fp32.logits(ids)).data as Float32Array);
    await fp32.release();
    const dSeq = await distance(path.join(dir, 'seq-external', 'model.onnx'), reference);
    const dAll = await distance(path.join(dir, 'all-inline', 'model.onnx'), reference);
    console.log(`AWQ vs fp32 logits, ||q - f|| / ||f||: sequential ${dSeq.toExponential(3)}, all at once ${dAll.toExponential(3)}`);
    expect(dSeq).toBeGreaterThan(0);
    expect(dSeq).toBeLessThan(1.5 * dAll);
  });

  test('a model without block names: refused when asked for, all at once by default', async () => {
    const toy = writeToyLm(path.join(dir, 'toy'), { dtype: 'float32', external: false });
    const base = { input: toy, method: 'awq' as const, calibText: calibText(), calibTokens: 256, calibSeqlen: 64 };
    await expect(quantizeModel({ ...base, output: path.join(dir, 'toy-seq', 'model.onnx'), calibMode: 'sequential' })).rejects.toThrow(
      /--calib-mode sequential: no decoder blocks found in .*layers\.N.*; use --calib-mode all/,
    );
    expect(fs.existsSync(path.join(dir, 'toy-seq', 'model.onnx'))).toBe(false);
    const summary = await quantizeModel({ ...base, output: path.join(dir, 'toy-default', 'model.onnx') });
    expect(summary.calibMode).toBe('all');
  });

  test('CLI: progress names the block and the time left; Ctrl-C after a block stops cleanly with nothing written', () => {
    assertBuiltCli();
    const out = path.join(dir, 'cli-seq');
    const args = [BIN, 'quantize', modelPath, '-o', path.join(out, 'model.onnx'), '--method', 'awq', '--calib', CALIB_TEXT, '--calib-tokens', '512',
      '--calib-seqlen', '256', '--calib-mode', 'sequential'];
    const env = { ...process.env, NO_COLOR: '1', CI: '1' };
    const stopped = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...env, W4A8_SIGNAL_AT: 'block-done:SIGINT' }, timeout: 120_000 });
    expect(stopped.status).toBe(130);
    expect(stopped.stderr).toMatch(/block 0 done \(1\/5\)/);
    expect(stopped.stderr.trim().split('\n').pop()).toMatch(/interrupted \(Ctrl-C\): stopped cleanly, nothing written/);
    expect(fs.existsSync(out) ? fs.readdirSync(out) : []).toEqual([]);
    const done = spawnSync(process.execPath, [...args, '--json'], { encoding: 'utf8', env, timeout: 120_000 });
    expect(done.status).toBe(0);
    expect(JSON.parse(done.stdout).calibMode).toBe('sequential');
    // JSON progress lines name each block, from the second one on with an estimate of the time left.
    expect(done.stderr).toMatch(/block 1 \(2\/5, about \d+s left\) calibration/);
  });

  test('CLI --resume: an interrupted run keeps its finished blocks, a different run is refused, the resumed output equals an uninterrupted one', () => {
    assertBuiltCli();
    // External data in (the streamed write) and AWQ + GPTQ: restored layers are streamed out again,
    // their AWQ scalings folded again, and the next block is calibrated on restored activations.
    const extDir = path.join(dir, 'resume-in');
    fs.mkdirSync(extDir);
    const input = path.join(extDir, 'model.onnx');
    saveModel(loadModel(modelPath), input, { externalData: 'always' });
    fs.copyFileSync(STORIES_TOKENIZER, path.join(extDir, path.basename(STORIES_TOKENIZER)));
    const argsFor = (out: string, tokens = '512') => [BIN, 'quantize', input, '-o', path.join(out, 'model.onnx'), '--method', 'awq+gptq', '--group', '32',
      '--format', 'w4a8', '--calib', CALIB_TEXT, '--calib-tokens', tokens, '--calib-seqlen', '256', '--calib-mode', 'sequential'];
    const env = { ...process.env, NO_COLOR: '1', CI: '1' };
    const reference = path.join(dir, 'resume-reference');
    const clean = spawnSync(process.execPath, argsFor(reference), { encoding: 'utf8', env, timeout: 180_000 });
    expect(clean.status).toBe(0);

    const out = path.join(dir, 'resume-out');
    const state = path.join(out, '.model.onnx.w4a8-resume');
    const stopped = spawnSync(process.execPath, [...argsFor(out), '--resume'], { encoding: 'utf8', env: { ...env, W4A8_SIGNAL_AT: 'block-done:SIGINT' }, timeout: 180_000 });
    expect(stopped.status).toBe(130);
    expect(stopped.stderr.trim().split('\n').pop()).toMatch(/interrupted \(Ctrl-C\): stopped cleanly, output not written; the finished blocks are kept in .*\.model\.onnx\.w4a8-resume: run the same command with --resume/);
    expect(fs.readdirSync(out)).toEqual(['.model.onnx.w4a8-resume']);
    expect(JSON.parse(fs.readFileSync(path.join(state, 'state.json'), 'utf8')).blocksDone).toBe(1);

    // Other calibration windows: the state is not this run's.
    const other = spawnSync(process.execPath, [...argsFor(out, '256'), '--resume'], { encoding: 'utf8', env, timeout: 180_000 });
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/the resume state in .*w4a8-resume belongs to another run/);
    expect(fs.existsSync(path.join(state, 'state.json'))).toBe(true);

    const resumed = spawnSync(process.execPath, [...argsFor(out), '--resume'], { encoding: 'utf8', env, timeout: 180_000 });
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(/resumed: 1 block\(s\) taken from the interrupted run/);
    expect(resumed.stderr).toMatch(/resuming after block 0: 1 of 5 blocks were done/);
    expect(resumed.stderr).not.toMatch(/block 0 \(1\/5/);  // block 0 was not calibrated again
    expect(fs.existsSync(state)).toBe(false);
    for (const f of ['model.onnx', 'model.onnx_data']) {
      expect(Buffer.compare(fs.readFileSync(path.join(out, f)), fs.readFileSync(path.join(reference, f)))).toBe(0);
    }
    const layers = (p: string) => (JSON.parse(fs.readFileSync(path.join(p, 'model.onnx.report.json'), 'utf8')) as { layers: unknown[] }).layers;
    expect(layers(out)).toEqual(layers(reference));

    // --resume needs sequential calibration.
    const all = spawnSync(process.execPath, [...argsFor(path.join(dir, 'resume-all')).map((a) => (a === 'sequential' ? 'all' : a)), '--resume'], { encoding: 'utf8', env, timeout: 60_000 });
    expect(all.status).toBe(2);
    expect(all.stderr).toMatch(/--resume continues sequential calibration/);
  }, 600_000);

  test('--calib-mode is checked before any work', () => {
    expect(() => checkQuantizeArgs({ input: modelPath, output: path.join(dir, 'x', 'model.onnx'), calibMode: 'blockwise' as never })).toThrow(UsageError);
    expect(() => checkQuantizeArgs({ input: modelPath, output: path.join(dir, 'x', 'model.onnx'), calibMode: 'blockwise' as never })).toThrow(
      /--calib-mode must be one of sequential, all; got "blockwise"/,
    );
  });
});
