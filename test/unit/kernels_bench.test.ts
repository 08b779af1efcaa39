// The CPU benchmark's plumbing on a tiny shape: every variant runs, ours and ONNX Runtime agree
// with the float64 product of the same weights, and --write-docs replaces only its own section.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCpuBench, BASELINE_VARIANT } from '../../lib/bench/cpu';
import { cpuBenchSection, cpuBenchTable, cpuTargetLines, writeCpuSection } from '../../lib/bench/cpu_report';
import { parseShapes, parseTokenCounts } from '../../lib/cli/commands/bench';
import { cpuIsas } from '../../lib/native/kernels';

describe('bench cpu', () => {
  test('runs every variant on the same weights and reports sane errors', async () => {
    const report = await runCpuBench({
      shapes: [{ k: 200, n: 48 }], ms: [1, 3], rounds: 2, threads: 2, setBytes: 64 * 1024, batchMs: 1, scalarMaxM: 8,
    });
    const names = new Set(report.results.map((r) => r.variant));
    for (const v of ['w4a8', 'w4a8-fp4', BASELINE_VARIANT, 'ort-nbits-bs32-acc4', 'ort-fp32', ...cpuIsas().map((i) => `w4a8-${i}`)]) {
      expect(names).toContain(v);
    }
    for (const r of report.results) {
      expect(r.medianMs).toBeGreaterThan(0);
      expect(r.minMs).toBeLessThanOrEqual(r.medianMs);
      expect(r.maxMs).toBeGreaterThanOrEqual(r.medianMs);
      // Several matrices rotate even with a tiny set: 64 KiB / ~6 KiB per int4 matrix.
      if (r.variant === 'w4a8') expect(r.matrices).toBeGreaterThan(5);
      if (r.variant === 'ort-fp32') {
        expect(r.relErr).toBeLessThan(1e-5); // fp32 on the exact dequantization
      } else {
        expect(r.relErr).toBeGreaterThan(1e-5); // int8 activations: a real, small error
        expect(r.relErr).toBeLessThan(3e-2);
      }
    }
    // Ours and ORT read the same int4 g128 weights: same activation quantization scheme, so their
    // errors against the same float64 product are of the same size.
    const ours = report.results.find((r) => r.variant === 'w4a8' && r.m === 3)!;
    const ort = report.results.find((r) => r.variant === BASELINE_VARIANT && r.m === 3)!;
    expect(ours.relErr / ort.relErr).toBeGreaterThan(0.3);
    expect(ours.relErr / ort.relErr).toBeLessThan(3);
    const table = cpuBenchTable(report);
    expect(table).toContain('| 200 x 48 | 1 | w4a8 |');
    expect(table).toMatch(/GB\/s/);
    expect(table).toMatch(/TOPS/);
  });

  test('--write-docs replaces only the CPU section, atomically', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-bench-'));
    const file = path.join(dir, 'BENCHMARKS.md');
    fs.writeFileSync(file, '# Benchmarks\n\n## CUDA kernels\n\ncuda table\n\n## CPU kernels\n\nold cpu table\n\n## Quality\n\nq\n');
    const report = {
      cpu: 'Test CPU', isa: 'avx2', threads: 2, setBytes: 2 ** 30, loadAvg: [0.5, 0.7] as [number, number],
      results: [{ variant: BASELINE_VARIANT, m: 1, n: 8, k: 16, medianMs: 2, minMs: 1, maxMs: 3, runs: 5, relErr: 0.01, weightBytes: 100, matrices: 3 },
        { variant: 'w4a8', m: 1, n: 8, k: 16, medianMs: 1, minMs: 1, maxMs: 1, runs: 5, relErr: 0.01, weightBytes: 100, matrices: 3 }],
    };
    writeCpuSection(file, cpuBenchSection(report, { command: 'w4a8 bench cpu --quick', date: new Date('2026-01-02T00:00:00Z') }));
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('## CUDA kernels\n\ncuda table');
    expect(text).toContain('## Quality\n\nq');
    expect(text).not.toContain('old cpu table');
    expect(text).toContain('w4a8 bench cpu --quick');
    expect(text).toContain('| 16 x 8 | 1 | w4a8 | 1.000 |');
    expect(text).toContain('2.00x');
    expect(fs.readdirSync(dir)).toEqual(['BENCHMARKS.md']); // no temp file left
    // A file without the section gets it appended.
    fs.writeFileSync(file, '# Benchmarks\n\n## CUDA kernels\n\nx\n');
    writeCpuSection(file, cpuBenchSection(report, { command: 'c', date: new Date() }));
    expect(fs.readFileSync(file, 'utf8')).toMatch(/## CUDA kernels\n\nx\n\n## CPU kernels\n/);
    fs.rmSync(dir, { recursive: true });
  });

  test('the targets block says met or by how much a target was missed', () => {
    const row = (variant: string, m: number, medianMs: number, relErr: number) =>
      ({ variant, m, n: 4096, k: 4096, medianMs, minMs: medianMs, maxMs: medianMs, runs: 3, relErr, weightBytes: 1, matrices: 1 });
    const report = {
      cpu: 'Test CPU', isa: 'avx512vnni', threads: 2, setBytes: 2 ** 30, loadAvg: [0, 0] as [number, number],
      results: [row(BASELINE_VARIANT, 1, 1.4, 0.006), row('w4a8', 1, 1, 0.006), row(BASELINE_VARIANT, 128, 10, 0.007), row('w4a8', 128, 4, 0.008)],
    };
    const lines = cpuTargetLines(report);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/M=1, .* 1\.40x .*: met; .*: no larger\./);
    expect(lines[1]).toMatch(/M=128, .* 2\.50x .*: missed by 50 % \(2\.50x of 5x\); .*: LARGER\./);
  });

  test('shape and token-count parsing refuses bad input', () => {
    expect(parseShapes('4096x11008, 11008X4096')).toEqual([{ k: 4096, n: 11008 }, { k: 11008, n: 4096 }]);
    expect(parseTokenCounts('1,8, 32')).toEqual([1, 8, 32]);
    expect(() => parseShapes('4096')).toThrow(/KxN/);
    expect(() => parseShapes('0x5')).toThrow(/KxN/);
    expect(() => parseTokenCounts('1,-2')).toThrow(/token count/);
    expect(() => parseTokenCounts('1.5')).toThrow(/token count/);
  });
});
