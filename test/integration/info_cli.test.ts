// `w4a8 info`: the CPU, its instruction sets and the one kernels use (W4A8_ISA honoured where the CPU
// has it, a warning where not), CUDA, and the ONNX Runtime library the w4a8 engine opens with its
// version, or why it cannot be opened (info still succeeds). Needs dist/ built.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertBuiltCli, runCli } from '../helpers/built_cli';

beforeAll(assertBuiltCli);

interface InfoJson {
  cpu: string;
  cpuIsas: string[];
  defaultIsa: string;
  cudaCompiled: boolean;
  cudaDevices: number;
  onnxRuntime: { library: string | null; version: string | null; error?: string };
}
function info(env: NodeJS.ProcessEnv = {}): { json: InfoJson; stderr: string } {
  const r = runCli(['info', '--json'], { W4A8_ISA: '', W4A8_ORT_LIBRARY: '', ...env });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  return { json: JSON.parse(r.stdout) as InfoJson, stderr: r.stderr };
}

describe('w4a8 info', () => {
  const pkgDir = path.dirname(require.resolve('onnxruntime-node/package.json'));
  const pkgVersion = (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;

  it('names the CPU, its ISAs with the best as default, and onnxruntime-node\'s library with its version', () => {
    const { json, stderr } = info();
    expect(stderr).toBe('');
    expect(json.cpu.length).toBeGreaterThan(0);
    expect(json.cpuIsas[0]).toBe('scalar');
    expect(json.defaultIsa).toBe(json.cpuIsas[json.cpuIsas.length - 1]);
    expect(typeof json.cudaCompiled).toBe('boolean');
    expect(json.onnxRuntime.library!.startsWith(pkgDir + path.sep)).toBe(true);
    expect(json.onnxRuntime.version).toBe(pkgVersion);
    const text = runCli(['info'], { W4A8_ISA: '', W4A8_ORT_LIBRARY: '' });
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`defaultIsa: ${json.defaultIsa}\n`);
    expect(text.stdout).toContain(`onnxRuntime: ${pkgVersion} (${json.onnxRuntime.library})\n`);
  });

  it('follows W4A8_ISA where the CPU has it, and warns where not', () => {
    expect(info({ W4A8_ISA: 'scalar' }).json.defaultIsa).toBe('scalar');
    const bogus = info({ W4A8_ISA: 'bogus' });
    expect(bogus.json.defaultIsa).toBe(bogus.json.cpuIsas[bogus.json.cpuIsas.length - 1]);
    expect(bogus.stderr).toMatch(/W4A8_ISA=bogus is not one of this CPU's ISAs/);
  });

  it('reports a library that cannot be opened instead of failing', () => {
    const missing = path.join(__dirname, 'no-such-dir', 'libonnxruntime.so.1');
    const { json } = info({ W4A8_ORT_LIBRARY: missing });
    expect(json.onnxRuntime.library).toBe(missing);
    expect(json.onnxRuntime.version).toBeNull();
    expect(json.onnxRuntime.error).toMatch(/cannot open ONNX Runtime from .*no-such-dir/);
    const text = runCli(['info'], { W4A8_ORT_LIBRARY: missing });
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^onnxRuntime: not available: cannot open ONNX Runtime from /m);
  });
});
