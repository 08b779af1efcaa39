// Seeded CLI fuzzing (test/helpers/fuzz_harness.ts): mutated models (bytes, protobuf fields, dims,
// external-data entries), llama2.c checkpoints and tokenizer files through inspect, eval, quantize
// and import; every fifth mutant a shared-machine situation (special files, two writers on one -o,
// signals at random points, non-finite weights). About a minute on an idle 2-core machine;
// `npm run fuzz -- --minutes N` runs longer (W4A8_FUZZ_SECONDS). The seed is printed; W4A8_FUZZ_SEED
// replays a run. Needs ../shared (stories260K, its tokenizer) and dist/ built; a missing piece is a
// reported skip.
//
// What longer runs found, and the test that now pins each (a replay needs the mutants before it):
// - seed 890397051, mutant 25: a MatMul turned into Conv passed our graph check and quantize wrote a
//   model ORT refuses -> per-op rules (lib/onnx/op_rules.ts), test/integration/graph_check_ops.test.ts.
// - seed 890397051: an empty name for a required MatMul input -> test/unit/graph_check.test.ts.
// - ai.onnx opsets below 7 and STRING tensors with raw data -> test/unit/graph_check.test.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuiltCli } from '../helpers/built_cli';
import { SHARED_DIR } from '../helpers/shared_paths';
import { writeToyLm } from '../helpers/quant_fixtures';
import { fuzzCli, summarize } from '../helpers/fuzz_harness';

const STORIES = path.join(SHARED_DIR, 'models', 'stories260K');
const CHECKPOINT = path.join(STORIES, 'stories260K.bin');
const TOKENIZER = path.join(STORIES, 'tok512.bin');
const GPT2_TOKENIZER = path.join(SHARED_DIR, 'models', 'tiny-random-gpt2-fp32', 'tokenizer.json');
const TEXT = path.join(SHARED_DIR, 'data', 'tinystories', 'eval-dev.txt');

// In npm test the run is the same on every machine: a fixed seed and a fixed number of mutants (the
// time limit only guards a slow machine). New seeds are explored with `npm run fuzz` or W4A8_FUZZ_SEED;
// what they find is fixed and then kept here by the fixed run. W4A8_FUZZ_SEED=random draws one.
const FIXED_SEED = 771362592;
const seconds = Number(process.env.W4A8_FUZZ_SECONDS ?? 150);
const maxMutants = Number(process.env.W4A8_FUZZ_MUTANTS ?? 80);
const seedText = process.env.W4A8_FUZZ_SEED;
const seed = seedText === undefined ? FIXED_SEED : seedText === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedText);
const missing = [CHECKPOINT, TOKENIZER, TEXT].filter((p) => !fs.existsSync(p));
if (missing.length > 0) console.warn(`fuzz test skipped: missing ${missing.join(', ')}`);
const itIf = missing.length === 0 ? it : it.skip;

describe('CLI fuzzing', () => {
  itIf(
    `every mutant exits 0, 1 or 2 with one line, no crash, hang or partial output; quantize outputs load in ORT (${maxMutants} mutants)`,
    async () => {
      assertBuiltCli();
      console.log(`fuzz seed ${seed} (W4A8_FUZZ_SEED=${seed} replays it), at most ${maxMutants} mutants in ${seconds} s`);
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-fuzz-'));
      try {
        const inline = writeToyLm(path.join(work, 'base-inline'), { dtype: 'float32', external: false, dim: 32, seed: 3 });
        const external = writeToyLm(path.join(work, 'base-external'), { dtype: 'float32', external: true, dim: 32, seed: 4 });
        const half = writeToyLm(path.join(work, 'base-fp16'), { dtype: 'float16', external: true, dim: 32, seed: 5 });
        const text = path.join(work, 'text.txt');
        fs.writeFileSync(text, fs.readFileSync(TEXT, 'utf8').slice(0, 4000));
        const tokenizers = [TOKENIZER, ...(fs.existsSync(GPT2_TOKENIZER) ? [GPT2_TOKENIZER] : [])];
        const report = await fuzzCli(
          { models: [inline, external, half], checkpoint: { bin: CHECKPOINT, tokenizer: TOKENIZER }, tokenizers, text },
          { seed, seconds, maxMutants, workDir: path.join(work, 'runs'), log: (l) => console.log(l) },
        );
        console.log(summarize(report));
        if (process.env.W4A8_FUZZ_REPORT) fs.writeFileSync(process.env.W4A8_FUZZ_REPORT, JSON.stringify(report, null, 2));
        expect(report.runs).toBeGreaterThan(0);
        expect(report.failures.map((f) => `#${f.id} ${f.mutation} :: w4a8 ${f.command.join(' ')} :: ${f.problems.join('; ')}`)).toEqual([]);
        expect(report.hangs).toBe(0);
        expect(report.ortRefused).toBe(0);
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    },
    (seconds + 240) * 1000,
  );
});
