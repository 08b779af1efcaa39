// Human output of `w4a8 bench e2e`: one markdown table (scripts/docs/bench_doc.js puts it in docs/BENCHMARKS.md).
import { E2E_BASELINE, type E2eBenchReport, type E2eResult } from './e2e';

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function ratio(r: E2eResult, base: E2eResult | undefined, key: 'prefillTokPerS' | 'decodeTokPerS'): string {
  return base ? `${(r[key] / base[key]).toFixed(2)}x` : 'n/a';
}

/**
 * Rows per (prompt length, variant): speeds, their ratio to ort-nbits-acc4, the linear weights'
 * bytes read per second of decoding (to set against the machine's DRAM bandwidth), memory, greedy agreement.
 */
export function e2eBenchTable(report: E2eBenchReport): string {
  const lines = [
    `| prompt + new | variant | prefill tok/s | vs ${E2E_BASELINE} | decode tok/s | vs ${E2E_BASELINE} | decode weight GB/s | peak RSS MB | RSS before MB | tokens equal to ort-fp32 |`,
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of report.results) {
    const base = report.results.find((b) => b.variant === E2E_BASELINE && b.promptTokens === r.promptTokens && b.newTokens === r.newTokens);
    lines.push(
      `| ${r.promptTokens} + ${r.newTokens} | ${r.variant} | ${fmt(r.prefillTokPerS)} | ${ratio(r, base, 'prefillTokPerS')} | ${fmt(r.decodeTokPerS)} | ` +
        `${ratio(r, base, 'decodeTokPerS')} | ${r.decodeWeightGBps === null || r.decodeWeightGBps === undefined ? 'n/a' : r.decodeWeightGBps.toFixed(1)} | ${r.peakRssMb ?? 'n/a'} | ${r.rssBeforeMb ?? 'n/a'} | ${r.sameAsFp32} of ${r.tokens.length} |`,
    );
  }
  return lines.join('\n');
}
