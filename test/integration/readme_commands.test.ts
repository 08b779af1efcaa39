// The README's own commands, parsed from README.md and run as written: the quick start's
// `npm run demo` (CI has just run `npm ci`; `npm test` is the command running this test) and the
// "typical quantization" block, with `w4a8` meaning this checkout's bin/w4a8.js. They run in a
// temporary folder that has ../shared beside it, as a clone does, so nothing lands in the tree.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuiltCli, BIN, ROOT } from '../helpers/built_cli';
import { SHARED_DIR } from '../helpers/shared_paths';

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The commands of the first ```sh block after `marker`: continuation lines joined, comments dropped. */
function shellBlockAfter(marker: string): string[] {
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README.md no longer contains "${marker}"; update this test with the README`);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error(`README.md has no sh block after "${marker}"`);
  return block[1]
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.length > 0);
}

const haveShared = fs.existsSync(path.join(SHARED_DIR, 'models', 'stories260K', 'stories260K.bin'));
if (!haveShared) console.warn(`README command tests skipped: ${SHARED_DIR} lacks models/stories260K`);
const describeShared = haveShared ? describe : describe.skip;

describeShared('README commands run verbatim', () => {
  let dir: string;
  let cwd: string;
  beforeAll(() => {
    assertBuiltCli();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-readme-'));
    cwd = path.join(dir, 'checkout');
    fs.mkdirSync(cwd);
    fs.symlinkSync(path.resolve(SHARED_DIR), path.join(dir, 'shared'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the typical quantization: import, quantize (GPTQ W4A8), eval', () => {
    const commands = shellBlockAfter('A typical quantization');
    expect(commands.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual(['w4a8 import', 'w4a8 quantize', 'w4a8 eval']);
    let last = '';
    for (const command of commands) {
      const args = command.split(/\s+/).slice(1);
      const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      if (r.status !== 0) throw new Error(`"${command}" exited ${r.status}: ${r.stderr}`);
      last = r.stdout;
    }
    expect(fs.existsSync(path.join(cwd, 'out', 'w4a8', 'model.onnx'))).toBe(true);
    expect(fs.existsSync(path.join(cwd, 'out', 'w4a8', 'model.onnx.report.json'))).toBe(true);
    const ppl = Number(/^ppl\s+([\d.]+)/m.exec(last)?.[1]);
    // GPTQ int4 g32 asym with int8 activations (MatMulNBits acc4) on eval-dev: docs/QUALITY.md gives 5.0004.
    expect(ppl).toBeGreaterThan(4.7954);
    expect(ppl).toBeLessThan(5.2);
  }, 300000);

  test('the 7B walkthrough\'s quantize command, run on stories260K with its weights in a side file', () => {
    // The same flags as written; only the model, the calibration text and the token count are the small
    // model's, and sequential calibration is asked for (the default only above 1 GiB of side files).
    const [command] = shellBlockAfter('## Quantizing a real-size (7B) export');
    expect(command).toMatch(/^w4a8 quantize llama-7b\/model.onnx -o llama-7b-int4\/model.onnx .*--resume$/);
    const imported = spawnSync(process.execPath, [BIN, 'import', 'llama2c', path.join(SHARED_DIR, 'models', 'stories260K', 'stories260K.bin'),
      '--tokenizer', path.join(SHARED_DIR, 'models', 'stories260K', 'tok512.bin'), '-o', path.join(cwd, 'llama-7b-src'), '--quiet'], { encoding: 'utf8' });
    if (imported.status !== 0) throw new Error(`import failed: ${imported.stderr}`);
    const convert = `require('./dist/onnx/model').saveModel(require('./dist/onnx/model').loadModel(${JSON.stringify(path.join(cwd, 'llama-7b-src', 'model.onnx'))}), ${JSON.stringify(path.join(cwd, 'llama-7b', 'model.onnx'))}, { externalData: 'always' })`;
    fs.mkdirSync(path.join(cwd, 'llama-7b'));
    const saved = spawnSync(process.execPath, ['-e', convert], { cwd: ROOT, encoding: 'utf8' });
    if (saved.status !== 0) throw new Error(`saving with a side file failed: ${saved.stderr}`);
    fs.copyFileSync(path.join(SHARED_DIR, 'models', 'stories260K', 'tok512.bin'), path.join(cwd, 'llama-7b', 'tok512.bin'));
    const args = command.split(/\s+/).slice(1)
      .map((a) => (a === 'my-calibration.txt' ? path.join(SHARED_DIR, 'data', 'tinystories', 'calib.txt') : a === '8192' ? '512' : a));
    const r = spawnSync(process.execPath, [BIN, ...args, '--calib-mode', 'sequential'], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    if (r.status !== 0) throw new Error(`"${command}" exited ${r.status}: ${r.stderr}`);
    expect(r.stdout).toMatch(/calibration: sequential/);
    expect(fs.existsSync(path.join(cwd, 'llama-7b-int4', 'model.onnx_data'))).toBe(true);
    expect(fs.existsSync(path.join(cwd, 'llama-7b-int4', '.model.onnx.w4a8-resume'))).toBe(false);
  }, 300000);

  test('the quick start: npm run demo (after npm ci)', () => {
    const lines = shellBlockAfter('## Quick start');
    const steps = lines.flatMap((l) => l.split('&&').map((s) => s.trim()));
    expect(steps).toContain('npm run demo');
    // npm ci is CI's own first step, and npm test is the command running this test.
    // As written: it runs in the checkout and leaves its models in w4a8-demo/ (git-ignored).
    const r = spawnSync('bash', ['-c', 'npm run demo'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    if (r.status !== 0) throw new Error(`npm run demo exited ${r.status}: ${r.stderr}`);
    expect(r.stdout).toMatch(/fp32/);
    expect(r.stdout).toMatch(/W4A8/i);
  }, 300000);
});
