// scripts/ort-avx2-library.js, the AVX2-only stand-in for ONNX Runtime (docs/BENCHMARKS.md, "AVX2 on both
// sides"): it changes only the probe bytes it names, never the stock library; the copy is the library the
// addon's sessions open under W4A8_ORT_LIBRARY, and it generates the same greedy tokens as the stock one
// on stories260K; a library without the patterns is refused and nothing is written. Which kernels the copy
// runs is shown by sampling (scripts/ort-isa-sample.sh, needs gdb), not here.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuiltCli, ROOT, runCli } from '../helpers/built_cli';
import { SHARED_DIR } from '../helpers/shared_paths';
import { onnxruntimeNodeLibraryPath } from '../../lib/ort/engine_session';

const SCRIPT = path.join(ROOT, 'scripts', 'ort-avx2-library.js');
const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');

function script(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
const haveStories = fs.existsSync(path.join(STORIES, 'stories260K.bin')) && fs.existsSync(path.join(STORIES, 'tok512.bin'));
if (!linuxX64) console.warn(`ort-avx2-library tests skipped: the patterns are Linux x86-64 code (this is ${process.platform}/${process.arch})`);
else if (!haveStories) console.warn(`ort-avx2-library generation test skipped: missing ${STORIES}/stories260K.bin or tok512.bin`);
const describeIf = linuxX64 ? describe : describe.skip;

describeIf('scripts/ort-avx2-library.js', () => {
  let dir: string;
  let copy: string;
  let stock: string;
  let stockHash: string;
  let made: ReturnType<typeof script>;
  beforeAll(() => {
    assertBuiltCli();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-ort-avx2-'));
    stock = onnxruntimeNodeLibraryPath();
    stockHash = sha256(stock);
    copy = path.join(dir, 'lib', 'libonnxruntime.so.1');
    made = script(['--out', copy]);
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('changes the six probe bytes it names and leaves the stock library as it was', () => {
    expect(made.stderr).not.toMatch(/ort-avx2-library:/);
    expect(made.status).toBe(0);
    expect(made.stdout.trim()).toBe(copy);
    expect(made.stderr.match(/^patched /gm)).toHaveLength(4);
    const a = fs.readFileSync(stock);
    const b = fs.readFileSync(copy);
    expect(b.length).toBe(a.length);
    const differing: number[] = [];
    for (let i = 0; i < a.length; ++i) if (a[i] !== b[i]) differing.push(i);
    // xgetbv's mov -> and $0x1f,%al (2 bytes, 2 places), CPUIDInfo's mask (1), MLAS's AVX-VNNI bit (1).
    expect(differing).toHaveLength(6);
    const reported = [...made.stderr.matchAll(/ at 0x([0-9a-f]+)/g)].map((m) => parseInt(m[1], 16));
    for (const o of differing) expect(reported.some((r) => o >= r && o < r + 2)).toBe(true);
    expect(sha256(stock)).toBe(stockHash);
    expect(fs.readdirSync(path.dirname(copy))).toEqual(['libonnxruntime.so.1']);  // no temp file left
  });

  (haveStories ? it : it.skip)('is the library the addon opens under W4A8_ORT_LIBRARY, and generates the stock library\'s tokens', () => {
    const model = path.join(dir, 'fp32');
    const imp = runCli(['import', 'llama2c', path.join(STORIES, 'stories260K.bin'), '--tokenizer', path.join(STORIES, 'tok512.bin'), '-o', model, '--quiet']);
    expect({ status: imp.status, stderr: imp.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    const nbits = path.join(dir, 'nbits.onnx');
    const q = runCli(['quantize', path.join(model, 'model.onnx'), '--format', 'matmulnbits', '--group', '32', '-o', nbits, '--quiet']);
    expect({ status: q.status, stderr: q.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    const gen = (env: NodeJS.ProcessEnv) => runCli(['generate', nbits, '--engine', 'w4a8', '--prompt', 'Once upon a time', '--max-new-tokens', '32', '--json', '--quiet'], env);
    const missing = gen({ W4A8_ORT_LIBRARY: path.join(dir, 'no-such-lib.so') });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/no-such-lib\.so/);
    const withCopy = gen({ W4A8_ORT_LIBRARY: copy });
    const withStock = gen({});
    expect(withCopy.status).toBe(0);
    expect(withStock.status).toBe(0);
    const ids = (r: { stdout: string }) => (JSON.parse(r.stdout) as { ids: number[] }).ids;
    expect(ids(withCopy).length).toBeGreaterThan(32);
    expect(ids(withCopy)).toEqual(ids(withStock));
  }, 120_000);

  it('refuses a library without the patterns, naming the pattern, and writes nothing', () => {
    const other = path.join(dir, 'other.so');
    fs.writeFileSync(other, crypto.randomBytes(1 << 16));
    const out = path.join(dir, 'refused', 'libonnxruntime.so.1');
    const r = script(['--library', other, '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/pattern "xgetbv; mov %eax,%eax" occurs 0 times .* expected 2 .*nothing written/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('refuses to overwrite its input, and unknown options', () => {
    const r = script(['--library', copy, '--out', copy]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--out is the input library/);
    expect(script(['--in', copy]).status).toBe(2);
    expect(script(['--out']).status).toBe(2);
  });
});
