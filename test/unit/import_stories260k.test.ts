// The real check of the importer: stories260K imported from llama2.c and greedy-decoded for 256
// steps from an empty prompt (run.c's generate loop, full-sequence recompute) must print exactly
// the text llama2.c itself prints (greedy_empty_prompt.txt).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { importLlama2c } from '../../lib/import/llama2c';
import { loadTokenizer } from '../../lib/tokenize/load';

const DIR = path.resolve(__dirname, '../../../shared/models/stories260K');
const files = ['stories260K.bin', 'tok512.bin', 'greedy_empty_prompt.txt'].map((f) => path.join(DIR, f));
const have = files.every((f) => fs.existsSync(f));
if (!have) console.warn(`skipping the stories260K greedy test: ${files.join(', ')} not all present`);
const withData = have ? test : test.skip;

withData('stories260K greedy decode reproduces llama2.c', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-stories-'));
  try {
    const result = await importLlama2c(files[0], files[1], out);
    const tok = loadTokenizer(result.tokenizerPath);
    const session = await ort.InferenceSession.create(result.modelPath);
    const vocab = result.config.vocabSize;
    const tokens = [1];
    let text = '';
    for (let pos = 0; pos < 256; pos++) {
      const ids = new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [1, tokens.length]);
      const logits = (await session.run({ input_ids: ids })).logits.data as Float32Array;
      const row = logits.subarray((tokens.length - 1) * vocab, tokens.length * vocab);
      let next = 0;
      for (let i = 1; i < vocab; i++) if (row[i] > row[next]) next = i;
      if (next === 1) break;
      text += tok.decodeToken(next, tokens[tokens.length - 1]);
      tokens.push(next);
    }
    expect(text + '\n').toBe(fs.readFileSync(files[2], 'utf8'));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
