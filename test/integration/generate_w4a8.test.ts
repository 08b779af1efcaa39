// `w4a8 generate --engine ort|w4a8` on stories260K: a `--format w4a8` model generates the same greedy
// tokens with and without its KV cache through the addon's session, the engine can be forced both
// ways, and onnxruntime-node refuses com.w4a8 nodes with the fix. Needs dist/ built.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuiltCli } from '../helpers/built_cli';
import { SHARED_DIR } from '../helpers/shared_paths';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'w4a8.js');
const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');

function w4a8(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const missing = [path.join(STORIES, 'stories260K.bin'), path.join(STORIES, 'tok512.bin')].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`generate --engine tests skipped: missing ${missing.join(', ')}`);
beforeAll(assertBuiltCli);
const describeIf = missing.length === 0 ? describe : describe.skip;

describeIf('generate --engine on stories260K', () => {
  let dir: string;
  let fp32: string;
  let w4: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-generate-engine-'));
    const imp = w4a8(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', dir, '--quiet']);
    if (imp.status !== 0) throw new Error(`import failed (${imp.status}): ${imp.stderr}`);
    fp32 = path.join(dir, 'model.onnx');
    w4 = path.join(dir, 'w4a8.onnx');
    const q = w4a8(['quantize', fp32, '--format', 'w4a8', '--group', '32', '--asym', '--aformat', 'int8', '-o', w4, '--quiet']);
    if (q.status !== 0) throw new Error(`quantize failed (${q.status}): ${q.stderr}`);
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function generate(model: string, extra: string[]): { ids: number[]; kvCache: boolean; newTokens: number } {
    const r = w4a8(['generate', model, '--prompt', 'Once upon a time', '--max-new-tokens', '48', '--json', '--quiet', ...extra]);
    if (r.status !== 0) throw new Error(`generate ${extra.join(' ')} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  it('a w4a8 model gives the same tokens with and without the KV cache (w4a8 engine)', () => {
    const cached = generate(w4, ['--engine', 'w4a8']);
    const full = generate(w4, ['--engine', 'w4a8', '--no-kv-cache']);
    expect(cached.kvCache).toBe(true);
    expect(full.kvCache).toBe(false);
    expect(cached.newTokens).toBeGreaterThan(8);
    expect(cached.ids).toEqual(full.ids);
    // The engine is picked from the model's com.w4a8 domain without the option.
    expect(generate(w4, []).ids).toEqual(cached.ids);
  }, 120_000);

  it('the w4a8 engine runs a standard model with the tokens onnxruntime-node gives', () => {
    expect(generate(fp32, ['--engine', 'w4a8']).ids).toEqual(generate(fp32, ['--engine', 'ort']).ids);
  }, 120_000);

  it('--engine ort on com.w4a8 nodes fails with the fix; an unknown engine is a usage error', () => {
    const r = w4a8(['generate', w4, '--engine', 'ort', '--max-new-tokens', '4', '--quiet']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/com\.w4a8.*--engine w4a8/);
    const bad = w4a8(['generate', w4, '--engine', 'cuda', '--quiet']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/engine/);
  }, 60_000);
});
