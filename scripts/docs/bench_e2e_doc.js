// The generated blocks of the "End to end" section of docs/BENCHMARKS.md, from `w4a8 bench e2e --json`
// reports (one per model). The method and observations are hand-written in the doc; these blocks
// hold what the runs measured: the setting, the commands, the targets computed from the runs, the tables.
'use strict';
const { E2E_BASELINE } = require('../../dist/bench/e2e');
const { e2eBenchTable } = require('../../dist/bench/e2e_report');
const { shownPath } = require('./doc_blocks');

/** The runs `npm run bench -- e2e` makes: stories260K holds 512 positions, so its long prompt is 448 (+ 64 new). */
const E2E_RUNS = [
  { model: 'tinyllama-1.1b', promptTokens: '128,512', newTokens: 64 },
  { model: 'stories260K', promptTokens: '128,448', newTokens: 64 },
];

/**
 * The run of `npm run bench -- e2e-avx2`: tinyllama with both sides on AVX2 on an AVX-512 machine (our
 * kernels through W4A8_ISA=avx2, ONNX Runtime through the copy of scripts/ort-avx2-library.js).
 */
const E2E_AVX2_RUN = { model: 'tinyllama-1.1b', promptTokens: '128,512', newTokens: 64 };

function verdict(ratio, goal) {
  return ratio >= goal ? `met (${ratio.toFixed(2)}x)` : `missed (${ratio.toFixed(2)}x of ${goal}x)`;
}

/**
 * Targets on tinyllama-1.1b (w4a8-int8 vs ort-nbits-acc4): decode tokens/s >= 1.5x at every prompt
 * length, prefill of 512 tokens >= 1.5x, peak RSS <= 1.2x.
 */
function e2eTargetLines(report) {
  const find = (variant, p) => report.results.find((r) => r.variant === variant && r.promptTokens === p);
  const lines = [];
  for (const p of [...new Set(report.results.map((r) => r.promptTokens))]) {
    const ours = find('w4a8-int8', p), base = find(E2E_BASELINE, p);
    if (!ours || !base) continue;
    const traffic = ours.decodeWeightGBps && base.decodeWeightGBps ? ` Linear weights read while decoding: ${ours.decodeWeightGBps.toFixed(1)} vs ${base.decodeWeightGBps.toFixed(1)} GB/s.` : '';
    const plain = find('w4a8-int8-unfused', p);
    const alone = plain ? ` The same W4A8MatMuls in the standard-op graph (w4a8-int8-unfused): ${plain.decodeTokPerS.toFixed(2)} tokens/s, ${(plain.decodeTokPerS / base.decodeTokPerS).toFixed(2)}x.` : '';
    // ONNX Runtime's strongest graph for the model (ORT GenAI's layout), and our op inside it.
    const genai = find('ort-nbits-acc4-genai', p), oursGenai = find('w4a8-int8-genai', p);
    const vsGenai = (key, digits) => genai
      ? ` Against MatMulNBits in ONNX Runtime GenAI's graph (ort-nbits-acc4-genai, ${genai[key].toFixed(digits)} tokens/s): ${(ours[key] / genai[key]).toFixed(2)}x` +
        (oursGenai ? `; W4A8MatMul in that graph (w4a8-int8-genai) ${oursGenai[key].toFixed(digits)} tokens/s, ${(oursGenai[key] / genai[key]).toFixed(2)}x.` : '.')
      : '';
    lines.push(`- decode after a ${p}-token prompt: w4a8-int8 ${ours.decodeTokPerS.toFixed(2)} tokens/s vs ${E2E_BASELINE} ${base.decodeTokPerS.toFixed(2)} (target >= 1.5x): ${verdict(ours.decodeTokPerS / base.decodeTokPerS, 1.5)}.${traffic}${alone}${vsGenai('decodeTokPerS', 2)}`);
    // Float activations on both sides: our W4A16 path against MatMulNBits at accuracy_level 0.
    const a16 = find('w4a8-a16', p), acc0 = find('ort-nbits-acc0', p);
    if (a16 && acc0) {
      lines.push(`- float activations after a ${p}-token prompt: w4a8-a16 decodes ${a16.decodeTokPerS.toFixed(2)} tokens/s vs ort-nbits-acc0 ${acc0.decodeTokPerS.toFixed(2)} (${(a16.decodeTokPerS / acc0.decodeTokPerS).toFixed(2)}x), ` +
        `prefills ${a16.prefillTokPerS.toFixed(1)} vs ${acc0.prefillTokPerS.toFixed(1)} tokens/s (${(a16.prefillTokPerS / acc0.prefillTokPerS).toFixed(2)}x).`);
    }
    if (p === 512) {
      const plainPrefill = plain ? ` Unfused: ${plain.prefillTokPerS.toFixed(1)} tokens/s, ${(plain.prefillTokPerS / base.prefillTokPerS).toFixed(2)}x.` : '';
      lines.push(`- prefill of 512 tokens: w4a8-int8 ${ours.prefillTokPerS.toFixed(1)} tokens/s vs ${base.prefillTokPerS.toFixed(1)} (target >= 1.5x): ${verdict(ours.prefillTokPerS / base.prefillTokPerS, 1.5)}.${plainPrefill}${vsGenai('prefillTokPerS', 1)}`);
    }
  }
  const ours = report.results.find((r) => r.variant === 'w4a8-int8'), base = report.results.find((r) => r.variant === E2E_BASELINE);
  if (ours && base && ours.peakRssMb && base.peakRssMb) {
    const r = ours.peakRssMb / base.peakRssMb;
    lines.push(`- peak RSS: w4a8-int8 ${ours.peakRssMb} MB vs ${E2E_BASELINE} ${base.peakRssMb} MB (target <= 1.2x): ${r <= 1.2 ? 'met' : 'missed'} (${r.toFixed(2)}x).`);
  }
  return lines;
}

function runLines(report) {
  return [
    `${report.model}; ${report.quantization}; ${report.rounds} round(s); prompt ids seeded (${report.seed}); ` +
      `models prepared in ${report.prepareSeconds.toFixed(0)} s, timed in ${report.benchSeconds.toFixed(0)} s.`,
    '',
    '```',
    report.command,
    '```',
  ];
}

/** reports: [{ report, command }] for the E2E_RUNS, in order. */
function e2eBlocks(reports, date) {
  const first = reports[0].report;
  const setting = [
    `Measured ${date.toISOString().slice(0, 10)} on ${first.cpu} (${first.threads} threads, default ISA ${first.isa}, ONNX Runtime intra-op spinning ${first.ortSpinning ? 'on' : 'off'} in every variant, ` +
      `the ONNX Runtime variants run by ${first.baselineEngine === 'ort' ? 'onnxruntime-node' : "the addon's session of the same libonnxruntime.so.1, our variants' call path"}; ` +
      `1-minute load average ${first.loadAvg[0].toFixed(1)} before, ${reports[reports.length - 1].report.loadAvg[1].toFixed(1)} after: above ~${first.threads} the machine was shared and the numbers are noisy).`,
    '',
    `Peak RSS: ${first.rssMethod}.`,
  ];
  const results = [];
  for (const { report, command } of reports) {
    results.push(`### ${report.model}`, '', ...runLines({ ...report, command }), '');
    if (report.genaiSkipped) results.push(`No ONNX Runtime GenAI-layout variants: ${report.genaiSkipped}.`, '');
    if (report.results.some((r) => r.variant === 'w4a8-int8') && /tinyllama/.test(report.model)) results.push('Targets, from this run:', '', ...e2eTargetLines(report), '');
    results.push(e2eBenchTable(report), '');
  }
  return { 'e2e-setting': setting.join('\n'), 'e2e-results': results.join('\n') };
}

/** The "AVX2 on both sides" block from its one run ({ report, command }). */
function e2eAvx2Blocks(run, date) {
  const { report, command } = run;
  const lines = [
    `Measured ${date.toISOString().slice(0, 10)} on ${report.cpu} (${report.threads} threads; our kernels ${report.isa}; ONNX Runtime from ` +
      `${shownPath(report.ortLibrary)}, the copy whose CPU probes see no AVX-512 and no AVX-VNNI; intra-op spinning ${report.ortSpinning ? 'on' : 'off'} in every variant; ` +
      `1-minute load average ${report.loadAvg[0].toFixed(1)} before, ${report.loadAvg[1].toFixed(1)} after: above ~${report.threads} the machine was shared and the numbers are noisy).`,
    '',
    ...runLines({ ...report, command }),
    '',
    'Targets, from this run (both sides on AVX2):',
    '',
    ...e2eTargetLines(report),
    '',
    e2eBenchTable(report),
  ];
  return { 'e2e-avx2-results': lines.join('\n') };
}

module.exports = { E2E_RUNS, E2E_AVX2_RUN, e2eBlocks, e2eAvx2Blocks, e2eTargetLines };
