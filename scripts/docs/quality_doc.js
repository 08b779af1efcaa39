// The quality grid of docs/QUALITY.md and the generated blocks of that doc. The grid is the
// project's own choice of what to measure (not a library preset); the doc's prose is hand-written
// and lives in docs/QUALITY.md, outside the blocks this file fills.
'use strict';
const { resolveConfig, configLabel } = require('../../dist/quant/config');
const { sweepTable } = require('../../dist/pipeline/report_markdown');
const { shownPath } = require('./doc_blocks');

/** rtn/awq/gptq x int4-asym/int4-sym/fp4 x g32/per-channel x activations none/int8/fp8, all through `sim` (54 rows). */
function qualityGrid() {
  const out = [];
  for (const method of ['rtn', 'awq', 'gptq']) {
    for (const [wformat, symmetric] of [['int4', false], ['int4', true], ['fp4', true]]) {
      for (const groupSize of [32, 0]) {
        for (const aformat of ['none', 'int8', 'fp8']) {
          out.push({ config: resolveConfig({ method, wformat, symmetric, groupSize, aformat, grouping: 'oc' }), format: 'sim' });
        }
      }
    }
  }
  return out;
}

/** Once the best method is known: its ic/auto grouping, and its stock-ORT exports (matmulnbits, qdq). */
function qualityFollowUps(bestMethod) {
  const base = { method: bestMethod, wformat: 'int4', symmetric: false, groupSize: 32 };
  const out = [];
  for (const grouping of ['ic', 'auto']) {
    for (const aformat of ['none', 'int8']) out.push({ config: resolveConfig({ ...base, grouping, aformat }), format: 'sim' });
  }
  for (const format of ['matmulnbits', 'qdq']) {
    for (const aformat of ['none', 'int8']) out.push({ config: resolveConfig({ ...base, grouping: 'oc', aformat }), format });
  }
  return out;
}

/**
 * The next quality steps and error compensation (int4 g32 asym, int8 per-token activations, sim):
 * awq+gptq; GPTQ's MSE clip search and act-order (alone and together, on gptq and awq+gptq);
 * lorc-aware and kron-aware at 2 %, 5 % and 10 % extra parameters per layer on top of RTN, AWQ,
 * GPTQ, awq+gptq and awq+gptq with the clip search; data-free LoRC at 5 % on RTN; GPTQ act-order
 * with lorc-aware 5 %.
 */
function qualityCompensation(withPlain = false) {
  const base = { wformat: 'int4', symmetric: false, groupSize: 32, grouping: 'oc', aformat: 'int8' };
  const sim = (partial) => ({ config: resolveConfig({ ...base, ...partial }), format: 'sim' });
  // The plain rtn/awq/gptq rows are part of the main grid; a run of this list alone (--only compensation) needs them too.
  const out = withPlain ? ['rtn', 'awq', 'gptq'].map((method) => sim({ method })) : [];
  out.push(sim({ method: 'awq+gptq' }));
  for (const method of ['gptq', 'awq+gptq']) {
    out.push(sim({ method, clipSearch: true }));
    out.push(sim({ method, actOrder: true }));
    out.push(sim({ method, actOrder: true, clipSearch: true }));
  }
  const bases = [{ method: 'rtn' }, { method: 'awq' }, { method: 'gptq' }, { method: 'awq+gptq' }, { method: 'awq+gptq', clipSearch: true }];
  for (const b of bases) {
    for (const compensate of ['lorc-aware', 'kron-aware']) {
      for (const compensateBudget of [0.02, 0.05, 0.1]) out.push(sim({ ...b, compensate, compensateBudget }));
    }
  }
  out.push(sim({ method: 'rtn', compensate: 'lorc', compensateBudget: 0.05 }));
  out.push(sim({ method: 'gptq', actOrder: true, compensate: 'lorc-aware', compensateBudget: 0.05 }));
  return out;
}

/** Calibration sizes of the calibration study (the main run uses 8192 tokens). */
const CALIBRATION_TOKENS = [4096, 16384, 32768, 65536];

/** The rows measured again at each calibration size: how much of a difference the calibration sample alone makes. */
function qualityCalibrationStudy() {
  const base = { wformat: 'int4', symmetric: false, groupSize: 32, grouping: 'oc', aformat: 'int8' };
  const sim = (partial) => ({ config: resolveConfig({ ...base, ...partial }), format: 'sim' });
  return [
    sim({ method: 'awq' }),
    sim({ method: 'gptq' }),
    sim({ method: 'gptq', clipSearch: true }),
    sim({ method: 'awq+gptq' }),
    sim({ method: 'awq+gptq', clipSearch: true }),
    sim({ method: 'awq+gptq', clipSearch: true, compensate: 'lorc-aware', compensateBudget: 0.05 }),
  ];
}

function is(r, method, wformat, sym, group, aformat) {
  const c = r.config;
  return !!c && r.exportFormat === 'sim' && c.grouping === 'oc' && !c.actOrder && !c.compensate && c.method === method && c.wformat === wformat && c.symmetric === sym && c.groupSize === group && c.aformat === aformat;
}

/** Perplexities of an independent float64 implementation (stories260K, eval-dev.txt, 20,000 tokens, ctx 512; ../shared/NOTES.md). */
const REFERENCE = [
  { what: 'fp32', ppl: 4.7954, match: (r) => r.config === undefined },
  { what: 'RTN int4 g32 asym, A16', ppl: 5.169, match: (r) => is(r, 'rtn', 'int4', false, 32, 'none') },
  { what: 'RTN int4 g32 sym, A16', ppl: 5.638, match: (r) => is(r, 'rtn', 'int4', true, 32, 'none') },
  { what: 'RTN int4 per-channel asym, A16', ppl: 5.286, match: (r) => is(r, 'rtn', 'int4', false, 0, 'none') },
  { what: 'RTN int4 per-channel sym, A16', ppl: 5.735, match: (r) => is(r, 'rtn', 'int4', true, 0, 'none') },
  { what: 'GPTQ int4 g32 asym, A16 (damp 0.01, no act-order)', ppl: 4.998, match: (r) => is(r, 'gptq', 'int4', false, 32, 'none') },
];

/** The plain grid's rows (no awq+gptq, act-order, clip-search or compensation rows: those have their own block). */
function simOc(rows) {
  return rows.filter((r) => r.exportFormat === 'sim' && r.config && r.config.grouping === 'oc' && !r.config.compensate && !r.config.actOrder && !r.config.clipSearch && r.config.method !== 'awq+gptq');
}

/** The W4A8 rows of the compensation block: int4 g32 asym, int8 per-token activations, sim, groups along K. */
function w4a8Rows(report) {
  return report.rows.filter((r) => r.exportFormat === 'sim' && r.config && r.config.grouping === 'oc' && r.config.wformat === 'int4' && !r.config.symmetric && r.config.groupSize === 32 && r.config.aformat === 'int8');
}

/** The issue's two quality targets, met or missed with numbers (studies: the calibration-size sweeps, optional). */
function compensationTargets(report, studies = []) {
  const base = report.baseline.ppl;
  const rows = w4a8Rows(report);
  const out = [];
  const within5 = rows.filter((r) => (r.extraParamsPct ?? 0) <= 5).sort((a, b) => a.ppl - b.ppl);
  if (within5.length) {
    const best = within5[0];
    const d = (best.ppl / base - 1) * 100;
    let line = `- Best W4A8 (int4 g32 asym + int8 per token) with at most 5% extra parameters within 3% of fp32 (ppl <= ${(base * 1.03).toFixed(4)}): ` +
      `${best.label}, ppl ${best.ppl.toFixed(4)} (${pct(d)}, ${best.bitsPerWeight !== undefined ? best.bitsPerWeight.toFixed(3) : '-'} bits per weight, ${(best.extraParamsPct ?? 0).toFixed(2)}% extra parameters): ${d <= 3 ? 'met' : '**missed**'}`;
    const studyRows = studies.flatMap((st) => w4a8Rows(st.report).filter((r) => (r.extraParamsPct ?? 0) <= 5).map((r) => ({ r, tokens: st.tokens })));
    studyRows.sort((a, b) => a.r.ppl - b.r.ppl);
    if (studyRows.length) {
      const sb = studyRows[0];
      const sd = (sb.r.ppl / base - 1) * 100;
      line += `; best with another calibration size: ${sb.r.label} on ${sb.tokens} tokens, ppl ${sb.r.ppl.toFixed(4)} (${pct(sd)}): ${sd <= 3 ? 'met' : '**missed**'}`;
    }
    out.push(`${line}.`);
  }
  const pairs = [];
  for (const method of ['rtn', 'awq']) {
    for (const budget of [0.05, 0.1]) {
      const find = (comp) => rows.find((r) => r.config.method === method && !r.config.actOrder && !r.config.clipSearch && r.config.compensate === comp && r.config.compensateBudget === budget);
      const lorc = find('lorc-aware');
      const kron = find('kron-aware');
      if (lorc && kron) pairs.push({ method, budget, lorc, kron });
    }
  }
  if (pairs.length) {
    const wins = pairs.filter((p) => p.kron.ppl < p.lorc.ppl).length;
    const detail = pairs.map((p) => `${p.method.toUpperCase()} ${p.budget * 100}%: kron-aware ${p.kron.ppl.toFixed(4)} vs lorc-aware ${p.lorc.ppl.toFixed(4)} (${signed(p.kron.ppl - p.lorc.ppl)})`).join('; ');
    out.push(`- kron-aware beats lorc-aware at equal budgets on top of RTN and AWQ: ${wins} of ${pairs.length} (${detail}): ${wins === pairs.length ? 'met' : '**missed**'}.`);
  }
  return out.join('\n');
}

/** The calibration study: each row's ppl per calibration size (the main run's 8192 tokens included). */
function calibrationTable(report, studies) {
  const base = report.baseline.ppl;
  const sizes = [{ tokens: report.calibTokens, report }, ...studies].sort((a, b) => a.tokens - b.tokens);
  const labels = qualityCalibrationStudy().map((e) => configLabel(e.config));
  const lines = [`| configuration | ${sizes.map((s) => `${s.tokens} tokens`).join(' | ')} | mean | vs fp32 (mean) |`, `|---|${sizes.map(() => '---:').join('|')}|---:|---:|`];
  for (const label of labels) {
    const ppls = sizes.map((s) => {
      const r = s.report.rows.find((x) => x.label === label && x.exportFormat === 'sim');
      return r ? r.ppl : undefined;
    });
    const have = ppls.filter((p) => p !== undefined);
    const mean = have.reduce((a, b) => a + b, 0) / Math.max(1, have.length);
    lines.push(`| ${label} | ${ppls.map((p) => (p === undefined ? '-' : p.toFixed(4))).join(' | ')} | ${mean.toFixed(4)} | ${pct((mean / base - 1) * 100)} |`);
  }
  lines.push('', `Calibration on the first N tokens of \`${shownPath(report.calibText)}\` in windows of ${report.calibSeqlen}, one sweep per size; fp32 ${base.toFixed(4)}.`);
  return lines.join('\n');
}

/** The compensation block: each W4A8 g32 asym row of RTN/AWQ/GPTQ (plain, act-order, compensated) with its bits per weight. */
function compensationTable(report, command) {
  const base = report.baseline.ppl;
  const rows = w4a8Rows(report);
  const lines = ['| configuration | extra parameters | bits per weight | ppl | vs fp32 |', '|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    const bits = r.bitsPerWeight !== undefined ? r.bitsPerWeight.toFixed(3) : '-';
    const extra = r.extraParamsPct !== undefined ? `${r.extraParamsPct.toFixed(2)}%` : '-';
    lines.push(`| ${r.label} | ${extra} | ${bits} | ${r.ppl.toFixed(4)} | ${pct((r.ppl / base - 1) * 100)} |`);
  }
  lines.push('', `Measured ${report.createdAt.slice(0, 10)} with \`${command}\`; fp32 ${base.toFixed(4)}.`);
  return lines.join('\n');
}

/** The method with the lowest ppl at int4 asym g32 A16 (sim). */
function bestMethod(rows) {
  const cands = simOc(rows).filter((r) => r.config.wformat === 'int4' && !r.config.symmetric && r.config.groupSize === 32 && r.config.aformat === 'none');
  cands.sort((a, b) => a.ppl - b.ppl);
  return cands[0] && cands[0].config ? cands[0].config.method : 'rtn';
}

const pct = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}%`;
const signed = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;

/** The generated blocks of docs/QUALITY.md: setting, reproduce, reference, targets, table. */
function qualityBlocks(report, command) {
  const all = [report.baseline, ...report.rows];
  const base = report.baseline.ppl;
  const setting =
    `Measured ${report.createdAt.slice(0, 10)}: model \`${shownPath(report.model)}\`; perplexity on the first ${report.maxTokens} tokens of ` +
    `\`${shownPath(report.evalText)}\` in windows of ctx ${report.ctx}; calibration on ${report.calibTokens} tokens of ` +
    `\`${shownPath(report.calibText)}\` in windows of ${report.calibSeqlen}; ${report.rows.length} quantized configurations.`;
  const reproduce = ['```sh', command, '```'].join('\n');

  const reference = ['| configuration | reference ppl | ours | difference |', '|---|---:|---:|---:|'];
  for (const ref of REFERENCE) {
    const r = all.find(ref.match);
    reference.push(`| ${ref.what} | ${ref.ppl.toFixed(4)} | ${r ? r.ppl.toFixed(4) : 'not run'} | ${r ? signed(r.ppl - ref.ppl) : '-'} |`);
  }

  const targets = [];
  const sims = simOc(report.rows);
  const verdict = (ok) => (ok ? 'met' : '**not met**');
  const bestA16 = sims.filter((r) => r.config.wformat === 'int4' && r.config.groupSize === 32 && r.config.aformat === 'none').sort((a, b) => a.ppl - b.ppl)[0];
  const bestW4A8 = sims.filter((r) => r.config.aformat !== 'none').sort((a, b) => a.ppl - b.ppl)[0];
  if (bestA16) {
    const d = (bestA16.ppl / base - 1) * 100;
    targets.push(`- Best int4 g32 A16 within 5% of fp32: ${bestA16.label}, ppl ${bestA16.ppl.toFixed(4)} (${pct(d)}): ${verdict(d <= 5)}.`);
  }
  if (bestW4A8) {
    const d = (bestW4A8.ppl / base - 1) * 100;
    targets.push(`- Best W4A8 within 7% of fp32: ${bestW4A8.label}, ppl ${bestW4A8.ppl.toFixed(4)} (${pct(d)}): ${verdict(d <= 7)}.`);
  }
  for (const method of ['awq', 'gptq']) {
    let better = 0;
    let total = 0;
    const worse = [];
    for (const r of sims.filter((x) => x.config.method === method)) {
      const c = r.config;
      const rtn = sims.find((x) => x.config.method === 'rtn' && x.config.wformat === c.wformat && x.config.symmetric === c.symmetric && x.config.groupSize === c.groupSize && x.config.aformat === c.aformat);
      if (!rtn) continue;
      total++;
      if (r.ppl < rtn.ppl) better++;
      else worse.push(`${r.label} (${r.ppl.toFixed(4)} vs RTN ${rtn.ppl.toFixed(4)})`);
    }
    targets.push(`- ${method.toUpperCase()} better than RTN at the same format, group and activations: ${better} of ${total} configurations${worse.length ? `; not better: ${worse.join(', ')}` : ''}: ${verdict(total > 0 && better === total)}.`);
  }

  return {
    'quality-setting': setting,
    'quality-reproduce': reproduce,
    'quality-reference': reference.join('\n'),
    'quality-targets': targets.join('\n'),
    'quality-table': sweepTable(all).replace(/\n*$/, ''),
    'quality-compensation': compensationTable(report, command),
  };
}

/** The blocks of the next quality steps: the compensation table, its targets and the calibration study. */
function compensationBlocks(report, studies, command) {
  const blocks = { 'quality-compensation': compensationTable(report, command), 'quality-compensation-targets': compensationTargets(report, studies) };
  if (studies.length) blocks['quality-calibration'] = calibrationTable(report, studies);
  return blocks;
}

module.exports = { qualityGrid, qualityFollowUps, qualityCompensation, qualityCalibrationStudy, CALIBRATION_TOKENS, bestMethod, qualityBlocks, compensationTable, compensationTargets, calibrationTable, compensationBlocks, REFERENCE };
