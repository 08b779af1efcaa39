// The docs writers in scripts/: generated blocks replace only their own content (prose stays),
// a missing block is an error, the quality grid and its verdicts, the CPU targets, and no
// absolute machine path in what they write.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BASELINE_VARIANT } from '../../lib/bench/cpu';
import { configLabel, resolveConfig, type QuantConfig } from '../../lib/quant/config';
import type { SweepReport, SweepRow } from '../../lib/pipeline/sweep_result';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const blocks = require('../../scripts/docs/doc_blocks') as {
  replaceBlocks(text: string, b: Record<string, string>): string;
  writeBlocks(file: string, b: Record<string, string>): void;
  shownPath(p: string, root?: string): string;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const quality = require('../../scripts/docs/quality_doc') as {
  qualityGrid(): { config: QuantConfig; format: string }[];
  qualityFollowUps(m: string): { config: QuantConfig; format: string }[];
  bestMethod(rows: SweepRow[]): string;
  qualityBlocks(r: SweepReport, command: string): Record<string, string>;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const benchE2e = require('../../scripts/docs/bench_e2e_doc') as {
  e2eTargetLines(r: unknown): string[];
  e2eAvx2Blocks(run: { report: unknown; command: string }, date: Date): Record<string, string>;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const bench = require('../../scripts/docs/bench_doc') as {
  cpuTargetLines(r: unknown): string[];
  cpuBlocks(r: unknown, command: string, date: Date): Record<string, string>;
  quantBlocks(r: unknown, command: string, date: Date): Record<string, string>;
};

describe('generated blocks', () => {
  test('replace only the text between their markers, atomically', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-docs-'));
    try {
      const file = path.join(dir, 'DOC.md');
      fs.writeFileSync(file, '# Doc\n\nHand prose.\n\n<!-- generated:a -->\nold a\n<!-- /generated:a -->\n\nMore prose.\n<!-- generated:b -->\n<!-- /generated:b -->\n');
      blocks.writeBlocks(file, { a: 'new a\n| 1 |', b: 'new b' });
      blocks.writeBlocks(file, { a: 'newer a' });
      expect(fs.readFileSync(file, 'utf8')).toBe('# Doc\n\nHand prose.\n\n<!-- generated:a -->\nnewer a\n<!-- /generated:a -->\n\nMore prose.\n<!-- generated:b -->\nnew b\n<!-- /generated:b -->\n');
      expect(fs.readdirSync(dir)).toEqual(['DOC.md']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a block the doc lacks is an error naming the markers to add', () => {
    expect(() => blocks.replaceBlocks('# Doc\n', { table: 'x' })).toThrow(/no block "table".*<!-- generated:table -->/);
  });

  test('paths are shown relative to the repository root', () => {
    const root = path.resolve('/repo/main');
    expect(blocks.shownPath(path.resolve('/repo/shared/data/calib.txt'), root)).toBe(path.join('..', 'shared', 'data', 'calib.txt'));
    expect(blocks.shownPath('rel/x.txt', root)).toBe('rel/x.txt');
  });
});

function row(partial: Partial<QuantConfig>, ppl: number, format: SweepRow['exportFormat'] = 'sim'): SweepRow {
  const config = resolveConfig(partial);
  return { label: configLabel(config), config, exportFormat: format, ppl, nll: Math.log(ppl), tokens: 100, deltaPct: (ppl / 4.8 - 1) * 100, quantizeSeconds: 0.1, evalSeconds: 0.2 };
}

describe('quality doc', () => {
  const baseline: SweepRow = { label: 'fp32', exportFormat: 'original', ppl: 4.8, nll: Math.log(4.8), tokens: 100, deltaPct: 0, quantizeSeconds: 0, evalSeconds: 0.2 };
  const report: SweepReport = {
    model: path.resolve('build/quality/m.onnx'), calibText: path.resolve('..', 'shared', 'calib.txt'), evalText: path.resolve('..', 'shared', 'eval.txt'),
    ctx: 512, maxTokens: 100, calibTokens: 8192, calibSeqlen: 512, createdAt: '2026-11-27T00:00:00.000Z', baseline,
    rows: [
      row({ method: 'rtn', aformat: 'none' }, 5.17),
      row({ method: 'awq', aformat: 'none' }, 5.2),
      row({ method: 'gptq', aformat: 'none' }, 5.0),
      row({ method: 'rtn', aformat: 'int8' }, 5.18),
      row({ method: 'gptq', aformat: 'int8' }, 5.01),
      row({ method: 'gptq', aformat: 'int8' }, 5.05, 'matmulnbits'),
    ],
  };

  test('the grid: 54 sim configurations, then the follow-ups of the best method', () => {
    const grid = quality.qualityGrid();
    expect(grid).toHaveLength(54);
    expect(new Set(grid.map((e) => configLabel(e.config))).size).toBe(54);
    expect(grid.every((e) => e.format === 'sim')).toBe(true);
    const follow = quality.qualityFollowUps('gptq');
    expect(follow.map((e) => `${e.config.method} ${e.config.grouping} ${e.format}`)).toContain('gptq auto sim');
    expect(follow.filter((e) => e.format !== 'sim').map((e) => e.format).sort()).toEqual(['matmulnbits', 'matmulnbits', 'qdq', 'qdq']);
  });

  test('states each target plainly, met or not, and checks the reference numbers', () => {
    expect(quality.bestMethod(report.rows)).toBe('gptq');
    const b = quality.qualityBlocks(report, 'npm run quality');
    expect(b['quality-targets']).toMatch(/Best int4 g32 A16 within 5% of fp32: gptq int4-asym g32 A16, ppl 5.0000 \(\+4.17%\): met/);
    expect(b['quality-targets']).toMatch(/Best W4A8 within 7% of fp32: gptq int4-asym g32 A8 int8, ppl 5.0100 \(\+4.37%\): met/);
    expect(b['quality-targets']).toMatch(/AWQ better than RTN .*: 0 of 1 configurations; not better: awq int4-asym g32 A16 \(5.2000 vs RTN 5.1700\): \*\*not met\*\*/);
    expect(b['quality-targets']).toMatch(/GPTQ better than RTN .*: 2 of 2 configurations: met/);
    expect(b['quality-reference']).toMatch(/\| RTN int4 g32 asym, A16 \| 5.1690 \| 5.1700 \| \+0.0010 \|/);
    expect(b['quality-reference']).toMatch(/\| RTN int4 g32 sym, A16 \| 5.6380 \| not run \| - \|/);
    expect(b['quality-table'].split('\n')).toHaveLength(2 + 7);
    expect(b['quality-setting']).toContain('`build/quality/m.onnx`');
    expect(b['quality-setting']).toContain(`\`${path.join('..', 'shared', 'eval.txt')}\``);
    for (const text of Object.values(b)) expect(text).not.toContain(path.resolve('..'));
  });
});

describe('benchmark doc', () => {
  const r = (variant: string, m: number, medianMs: number, relErr: number) =>
    ({ variant, m, n: 4096, k: 4096, medianMs, minMs: medianMs, maxMs: medianMs, runs: 3, relErr, weightBytes: 1, matrices: 1 });
  const report = {
    cpu: 'Test CPU', isa: 'avx512vnni', threads: 2, setBytes: 2 ** 30, loadAvg: [0.5, 0.7],
    results: [r(BASELINE_VARIANT, 1, 1.4, 0.006), r('w4a8', 1, 1, 0.006), r(BASELINE_VARIANT, 128, 10, 0.007), r('w4a8', 128, 4, 0.008)],
  };

  test('the targets say met or by how much a target was missed', () => {
    const lines = bench.cpuTargetLines(report);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/M=1, .* 1\.40x .*: met; .*: no larger\./);
    expect(lines[1]).toMatch(/M=128, .* 2\.50x .*: missed by 50 % \(2\.50x of 5x\); .*: LARGER\./);
  });

  test('the TinyLlama layer lines give w4a8 and w4a8-avx2 against ORT per shape', () => {
    const t = (variant: string, k: number, n: number, medianMs: number) => ({ ...r(variant, 1, medianMs, 0.006), k, n });
    const lines = bench.cpuTargetLines({ ...report, results: [
      t(BASELINE_VARIANT, 2048, 2048, 0.3), t('w4a8', 2048, 2048, 0.2), t('w4a8-avx2', 2048, 2048, 0.25),
      t(BASELINE_VARIANT, 2048, 256, 0.1), t('w4a8', 2048, 256, 0.04),
    ] });
    expect(lines).toEqual(['- M=1, TinyLlama-1.1B layers, w4a8 / w4a8-avx2 vs ort-nbits-bs128-acc4: 2048 x 2048 1.50x / 1.20x; 2048 x 256 2.50x / n/a.']);
  });

  test('the CPU and quantization blocks carry the run: date, CPU, threads, command, table', () => {
    const cpu = bench.cpuBlocks(report, 'w4a8 bench cpu --quick', new Date('2026-01-02T00:00:00Z'));
    expect(cpu['cpu-setting']).toMatch(/^Measured 2026-01-02 on Test CPU \(2 threads, default ISA avx512vnni; 1-minute load average 0.5 before, 0.7 after/);
    expect(cpu['cpu-setting']).toContain('w4a8 bench cpu --quick');
    expect(cpu['cpu-results']).toContain('| 4096 x 4096 | 1 | w4a8 | 1.000 |');
    expect(cpu['cpu-results']).toContain('1.40x');
    const quant = bench.quantBlocks({ cpu: 'q cpu', threads: 2, tokens: 256, awqRows: 64, hidden: 256, intermediate: 384, loadAvg: [1, 1],
      rows: [{ step: 'rtn', target: 'q_proj', k: 256, n: 256, wallSeconds: 0.5, cpuSeconds: 0.9 }],
      totals: [{ step: 'rtn', target: 'all', k: 0, n: 0, wallSeconds: 0.5, cpuSeconds: 0.9 }] }, 'w4a8 bench quant', new Date('2026-01-03'));
    expect(quant['quant-setting']).toMatch(/^Measured 2026-01-03 on q cpu \(2 quantization threads; /);
    expect(quant['quant-results']).toContain('| rtn | 0.50 | 0.90 | 1.80 |');
  });
});

describe('end-to-end benchmark doc', () => {
  const row = (variant: string, promptTokens: number, prefillTokPerS: number, decodeTokPerS: number, peakRssMb: number) =>
    ({ variant, promptTokens, newTokens: 4, prefillTokPerS, decodeTokPerS, peakRssMb, rssBeforeMb: 60, tokens: [1, 2, 3, 4, 5], sameAsFp32: 1, decodeWeightGBps: null });
  const report = {
    cpu: 'Test CPU', isa: 'avx2', threads: 2, rounds: 1, seed: 1, loadAvg: [0.5, 0.7], ortSpinning: true, baselineEngine: 'w4a8',
    ortLibrary: path.resolve('build', 'ort-avx2', 'libonnxruntime.so.1'), model: 'tinyllama-1.1b', quantization: 'rtn int4-asym g128',
    prepareSeconds: 10, benchSeconds: 20,
    results: [
      row('ort-nbits-acc4', 128, 100, 20, 1000), row('w4a8-int8', 128, 190, 40, 1100),
      row('ort-nbits-acc4', 512, 100, 10, 1000), row('w4a8-int8', 512, 120, 16, 1100),
    ],
  };

  test('the targets say met, or the ratio that missed', () => {
    const lines = benchE2e.e2eTargetLines(report);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^- decode after a 128-token prompt: w4a8-int8 40\.00 tokens\/s vs ort-nbits-acc4 20\.00 \(target >= 1\.5x\): met \(2\.00x\)\./);
    expect(lines[1]).toMatch(/^- decode after a 512-token prompt: .*: met \(1\.60x\)\./);
    expect(lines[2]).toMatch(/^- prefill of 512 tokens: w4a8-int8 120\.0 tokens\/s vs 100\.0 \(target >= 1\.5x\): missed \(1\.20x of 1\.5x\)\./);
    expect(lines[3]).toBe('- peak RSS: w4a8-int8 1100 MB vs ort-nbits-acc4 1000 MB (target <= 1.2x): met (1.10x).');
  });

  test('the AVX2 stand-in block names the date, both ISAs, the library relative to the checkout, the command and the targets', () => {
    const command = 'W4A8_ISA=avx2 W4A8_ORT_LIBRARY=build/ort-avx2/libonnxruntime.so.1 w4a8 bench e2e --model tinyllama-1.1b';
    const text = benchE2e.e2eAvx2Blocks({ report, command }, new Date('2026-01-04T00:00:00Z'))['e2e-avx2-results'];
    expect(text).toMatch(/^Measured 2026-01-04 on Test CPU \(2 threads; our kernels avx2; ONNX Runtime from build\/ort-avx2\/libonnxruntime\.so\.1, the copy/);
    expect(text).toContain('```\n' + command + '\n```');
    expect(text).toContain('Targets, from this run (both sides on AVX2):');
    expect(text).toContain('missed (1.20x of 1.5x)');
    expect(text).toContain('| 512 + 4 | w4a8-int8 | 120 | 1.20x | 16.0 | 1.60x |');
    expect(text).not.toContain(path.resolve('..'));
  });
});
