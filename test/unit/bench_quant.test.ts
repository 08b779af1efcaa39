// `w4a8 bench quant` on a scaled-down layer: every step is timed once per layer / activation, the
// synthetic activations have the outlier channels the method description promises.
import { runQuantBench, syntheticActivations } from '../../lib/bench/quant';
import { quantBenchTable } from '../../lib/bench/quant_report';
import { createCalibStats } from '../../lib/native/calib_stats';

describe('bench quant', () => {
  it('times statistics, RTN, AWQ (int8 and float candidates) and GPTQ for the seven layers', async () => {
    const report = await runQuantBench({ tokens: 256, awqRows: 64, aformats: ['int8', 'none'], hidden: 256, intermediate: 384 });
    const count = (step: string, aformat?: string) => report.rows.filter((r) => r.step === step && r.aformat === aformat).length;
    expect(count('calib-stats')).toBe(4);
    expect(count('rtn')).toBe(7);
    expect(count('awq', 'int8')).toBe(4);
    expect(count('awq', 'none')).toBe(4);
    expect(count('gptq')).toBe(7);
    expect(report.rows.filter((r) => r.step === 'gptq').map((r) => `${r.target} ${r.k}x${r.n}`)).toEqual([
      'q_proj 256x256', 'k_proj 256x256', 'v_proj 256x256', 'o_proj 256x256', 'gate_proj 256x384', 'up_proj 256x384', 'down_proj 384x256',
    ]);
    expect(report.rows.find((r) => r.step === 'awq')!.target).toBe('q_proj+k_proj+v_proj');
    for (const r of report.rows) {
      expect(r.wallSeconds).toBeGreaterThan(0);
      expect(r.cpuSeconds).toBeGreaterThanOrEqual(0);
    }
    const gptq = report.totals.find((t) => t.step === 'gptq')!;
    const sum = report.rows.filter((r) => r.step === 'gptq').reduce((s, r) => s + r.wallSeconds, 0);
    expect(gptq.wallSeconds).toBeCloseTo(sum, 9);
    expect(report.totals.map((t) => `${t.step}${t.aformat ? ` ${t.aformat}` : ''}`)).toEqual(['calib-stats', 'rtn', 'awq int8', 'awq none', 'gptq']);
    const table = quantBenchTable(report);
    expect(table).toContain('| awq (int8 activations, W4A8 kernels) | q_proj+k_proj+v_proj | 256 x 768 |');
  }, 120_000);

  it('rejects bad options', async () => {
    await expect(runQuantBench({ tokens: 256, awqRows: 512, aformats: ['int8'], hidden: 256, intermediate: 384 })).rejects.toThrow(/awqRows/);
    await expect(runQuantBench({ tokens: 256, awqRows: 64, aformats: ['fp8' as never], hidden: 256, intermediate: 384 })).rejects.toThrow(/aformats/);
    await expect(runQuantBench({ tokens: 256, awqRows: 64, aformats: ['int8'], hidden: 200, intermediate: 384 })).rejects.toThrow(/multiples of the group size/);
  });

  it('synthetic activations have four outlier channels well above the rest', async () => {
    const k = 256, tokens = 512;
    const x = await syntheticActivations(tokens, k, 3);
    const acc = createCalibStats({ k, sampleRows: 0, hessian: false });
    await acc.add(x, tokens);
    const { meanAbs } = await acc.finalize();
    const sorted = Array.from(meanAbs).sort((a, b) => b - a);
    const median = sorted[k >> 1];
    expect(median).toBeGreaterThan(0.3);
    expect(sorted[3] / median).toBeGreaterThan(5); // four outliers ...
    expect(sorted[4] / median).toBeLessThan(3); // ... and only four
    // Same seed, same data; another seed differs.
    expect(Buffer.from((await syntheticActivations(tokens, k, 3)).buffer).equals(Buffer.from(x.buffer))).toBe(true);
    expect(Buffer.from((await syntheticActivations(tokens, k, 4)).buffer).equals(Buffer.from(x.buffer))).toBe(false);
  });
});
