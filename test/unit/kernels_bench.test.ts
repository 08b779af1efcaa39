// The CPU benchmark's plumbing on a tiny shape: every variant runs (the fused-term variants
// included), ours and ONNX Runtime agree with the float64 product of the same weights; the CLI's
// argument parsing.
import { runCpuBench, BASELINE_VARIANT } from '../../lib/bench/cpu';
import { cpuBenchTable, emptyCallLine } from '../../lib/bench/cpu_report';
import { createMatMulNBitsSession, inputTensor, outputTensor, runMatMul, runMatMulInto } from '../../lib/bench/ort_matmul';
import { randomCanonicalWeight } from '../../lib/bench/quantized_set';
import { parseShapes, parseTokenCounts } from '../../lib/cli/commands/bench';
import { cpuIsas } from '../../lib/native/kernels';

describe('bench cpu', () => {
  test('runs every variant on the same weights and reports sane errors', async () => {
    const report = await runCpuBench({
      shapes: [{ k: 200, n: 48 }], ms: [1, 3], rounds: 2, threads: 2, setBytes: 64 * 1024, batchMs: 1, scalarMaxM: 8,
    });
    const names = new Set(report.results.map((r) => r.variant));
    for (const v of ['w4a8', 'w4a8-sync', 'w4a8-pool', 'w4a8-fp4', 'w4a8+lorc5%', 'w4a8+lorc5%-int8', 'w4a8+kron5%', BASELINE_VARIANT, `${BASELINE_VARIANT}-alloc`, 'ort-nbits-bs32-acc4', 'ort-fp32', ...cpuIsas().map((i) => `w4a8-${i}`)]) {
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
    for (const cost of Object.values(report.emptyCallUs)) expect(cost).toBeGreaterThan(0);
    expect(emptyCallLine(report)).toMatch(/^Empty-call cost .* spinning off\.$/);
    const table = cpuBenchTable(report);
    expect(table).toContain('| 200 x 48 | 1 | w4a8 |');
    expect(table).toMatch(/GB\/s/);
    expect(table).toMatch(/TOPS/);
  });

  test('ONNX Runtime fills a preallocated output tensor passed in fetches (the benchmark relies on it)', async () => {
    const w = randomCanonicalWeight({ format: 'int4', groupSize: 128, asymmetric: true }, 24, 256, 77);
    const s = await createMatMulNBitsSession(w, 4, { intraOpNumThreads: 1 });
    try {
      const x = new Float32Array(2 * 256).map((_, i) => Math.sin(i));
      const xt = inputTensor(x, 2, 256);
      const expected = await runMatMul(s, xt);
      const y = outputTensor(2, 24);
      (y.data as Float32Array).fill(Number.NaN);
      await runMatMulInto(s, xt, y);
      expect(Array.from(y.data as Float32Array)).toEqual(Array.from(expected));
    } finally {
      await s.release();
    }
  });

  test('shape and token-count parsing refuses bad input', () => {
    expect(parseShapes('4096x11008, 11008X4096')).toEqual([{ k: 4096, n: 11008 }, { k: 11008, n: 4096 }]);
    expect(parseShapes('tinyllama')).toEqual([{ k: 2048, n: 2048 }, { k: 2048, n: 256 }, { k: 2048, n: 5632 }, { k: 5632, n: 2048 }, { k: 2048, n: 32000 }]);
    expect(parseShapes('llama7b,2048x2048')).toHaveLength(4);
    expect(() => parseShapes('tinyllam')).toThrow(/preset/);
    expect(parseTokenCounts('1,8, 32')).toEqual([1, 8, 32]);
    expect(() => parseShapes('4096')).toThrow(/KxN/);
    expect(() => parseShapes('0x5')).toThrow(/KxN/);
    expect(() => parseTokenCounts('1,-2')).toThrow(/token count/);
    expect(() => parseTokenCounts('1.5')).toThrow(/token count/);
  });
});
