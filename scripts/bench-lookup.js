#!/usr/bin/env node
// Prompt-lookup decoding against plain greedy decoding on one model, in one process and one session,
// alternated round by round: decode tokens/s (median over rounds), forward passes, draft tokens
// confirmed, and whether both gave the same token ids. Then what one forward pass costs over 1 + N
// tokens (the newest and a draft of N) against 1, after the plain run's text: a draft that is not
// confirmed costs that difference.
//   node scripts/bench-lookup.js <model.onnx> [--lookup 4,8] [--rounds 5] [--new-tokens 256] [--prompt <text>] [--tokenizer <file>]
// Needs dist/ (npm run build). Prints the CPU and the kernel ISA first.
'use strict';
const fs = require('node:fs');
const { openDecoder } = require('../dist/ort/session');
const { generateText } = require('../dist/eval/generate');
const { cpuModel } = require('../dist/bench/cpu');
const { cpuDefaultIsa } = require('../dist/native/kernels');

const args = process.argv.slice(2);
const value = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const model = args[0];
const lookups = String(value('lookup', '4,8')).split(',').map(Number);
const rounds = Number(value('rounds', 5));
const newTokens = Number(value('new-tokens', 256));
const prompt = value('prompt', '');
const tokenizer = value('tokenizer', undefined);
if (!model || !fs.existsSync(model) || lookups.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 64)) || !(rounds >= 1) || !(newTokens >= 1)) {
  process.stderr.write('usage: node scripts/bench-lookup.js <model.onnx> [--lookup 4,8] [--rounds 5] [--new-tokens 256] [--prompt <text>] [--tokenizer <file>]\n');
  process.exit(2);
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

(async () => {
  console.log(`cpu: ${cpuModel()}, kernels: ${cpuDefaultIsa()}; model ${model}, prompt ${JSON.stringify(prompt)}, ${newTokens} new tokens, ${rounds} rounds`);
  const session = await openDecoder(model);
  const settings = [0, ...lookups];
  const runs = new Map(settings.map((n) => [n, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      for (const n of settings) {
        const g = await generateText({ session, modelPath: model, prompt, maxNewTokens: newTokens, lookup: n, ...(tokenizer ? { tokenizer } : {}) });
        runs.get(n).push(g);
      }
    }
    // Pass cost: steps over 1 and 1 + N tokens from the same cache, each rewound before the next.
    const ids = runs.get(0)[0].ids;
    let cache = (await session.step(ids.slice(0, -1))).cache;
    const sizes = [1, ...lookups.map((n) => n + 1)];
    const passMs = new Map(sizes.map((k) => [k, []]));
    for (let r = 0; r < rounds * 4; r++) {
      for (const k of sizes) {
        const feed = Array.from({ length: k }, (_, i) => ids[Math.max(0, ids.length - 1 - i)]);
        const t0 = performance.now();
        const step = await session.step(feed, cache, { allLogits: k > 1 });
        passMs.get(k).push(performance.now() - t0);
        cache = session.rewind(step.cache, cache.length);
      }
    }
    var passTable = sizes.map((k) => `${k} token${k > 1 ? 's' : ''}: ${median(passMs.get(k)).toFixed(2)} ms (${(median(passMs.get(k)) / median(passMs.get(1))).toFixed(2)}x)`).join(', ');
  } finally {
    await session.release();
  }
  const base = runs.get(0);
  const baseSpeed = median(base.map((g) => g.decodeTokPerS));
  console.log('lookup  decode tok/s (median)  runs                         passes  confirmed/drafted  same ids  x plain');
  for (const n of settings) {
    const g = runs.get(n);
    const speeds = g.map((x) => x.decodeTokPerS);
    const l = g[0].lookup;
    const same = g.every((x) => x.ids.join() === base[0].ids.join());
    console.log(
      `${String(n).padEnd(6)}  ${median(speeds).toFixed(1).padStart(21)}  ${speeds.map((s) => s.toFixed(0)).join(' ').padEnd(27)}  ` +
        `${String(l ? l.passes : g[0].newTokens).padStart(6)}  ${(l ? `${l.confirmed}/${l.drafted}` : '-').padStart(17)}  ${String(same).padStart(8)}  ${(median(speeds) / baseSpeed).toFixed(2).padStart(7)}`,
    );
  }
  console.log(`one forward pass after ${runs.get(0)[0].ids.length - 1} positions, median of ${rounds * 4}: ${passTable}`);
})().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
