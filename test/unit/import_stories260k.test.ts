// The real check of the importer: stories260K imported from llama2.c and greedy-decoded for 256
// steps from an empty prompt (run.c's generate loop, as a full-sequence recompute and through the
// KV cache) must print exactly the text llama2.c itself prints (greedy_empty_prompt.txt).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { importLlama2c } from '../../lib/import/llama2c';
import { loadTokenizer } from '../../lib/tokenize/load';
import { decoderFeeds, pastFrom, type Past } from '../helpers/llama2c_feeds';

const DIR = path.resolve(__dirname, '../../../shared/models/stories260K');
const files = ['stories260K.bin', 'tok512.bin', 'greedy_empty_prompt.txt'].map((f) => path.join(DIR, f));
const have = files.every((f) => fs.existsSync(f));
if (!have) console.warn(`skipping the stories260K greedy test: ${files.join(', ')} not all present`);
const withData = have ? test : test.skip;

withData('stories260K greedy decode reproduces llama2.c, recomputing every step and with the KV cache', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-stories-'));
  try {
    const result = await importLlama2c(files[0], files[1], out);
    const tok = loadTokenizer(result.tokenizerPath);
    const session = await ort.InferenceSession.create(result.modelPath);
    const c = result.config;
    const shape = { layers: c.nLayers, kvHeads: c.nKvHeads, headSize: c.headSize };
    const vocab = c.vocabSize;
    const expected = fs.readFileSync(files[2], 'utf8');
    for (const cached of [false, true]) {
      const tokens = [1];
      let text = '';
      let past: Past | undefined;
      for (let pos = 0; pos < 256; pos++) {
        // Full recompute feeds the whole sequence after an empty cache; cached feeds the newest token.
        const outputs = await session.run(decoderFeeds([cached && past ? [tokens[tokens.length - 1]] : tokens], shape, cached ? past : undefined));
        if (cached) past = pastFrom(outputs, tokens.length);
        const logits = outputs.logits.data as Float32Array;
        const rows = logits.length / vocab;
        const row = logits.subarray((rows - 1) * vocab, rows * vocab);
        let next = 0;
        for (let i = 1; i < vocab; i++) if (row[i] > row[next]) next = i;
        if (next === 1) break;
        text += tok.decodeToken(next, tokens[tokens.length - 1]);
        tokens.push(next);
      }
      expect(text + '\n').toBe(expected);
    }
    await session.release();
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
