// generateStream (the library's streaming API) on a model with a KV cache: the chunks it yields
// are the text generateGreedy returns, in order, prompt first; stopping early releases the session;
// the cached and recomputing paths choose the same ids; stop strings cut the text and the chunks agree. Models come from the random-weight importer
// (preset tiny-260k, 2 layers), so nothing outside the repository is needed.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateGreedy, generateStream, type GenerateChunk, type GenerateResult } from '../../lib/eval/generate';
import { importRandomLlama, RANDOM_PRESETS } from '../../lib/import/llama2c_random';
import { openDecoder } from '../../lib/ort/session';
import { modelMaxLength } from '../../lib/onnx/max_length';
import { Llama2cTokenizer } from '../../lib/tokenize/llama2c';
import { placeholderLlama2cTokenizer, PLACEHOLDER_MIN_VOCAB } from '../../lib/tokenize/llama2c_placeholder';

/** Every chunk a stream yields, and its return value. */
async function drain(stream: AsyncGenerator<GenerateChunk, GenerateResult, undefined>): Promise<{ chunks: GenerateChunk[]; result: GenerateResult }> {
  const chunks: GenerateChunk[] = [];
  for (;;) {
    const r = await stream.next();
    if (r.done) return { chunks, result: r.value };
    chunks.push(r.value);
  }
}

describe('generateStream on a random-weight decoder with a KV cache', () => {
  const seed = 11;
  let dir: string;
  let model: string;
  beforeAll(async () => {
    console.log(`seed ${seed}`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-stream-'));
    model = (await importRandomLlama('tiny-260k', dir, { layers: 2, seed })).modelPath;
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('yields the prompt pieces then one chunk per new token; the return value is the whole result', async () => {
    const { chunks, result } = await drain(generateStream({ modelPath: model, prompt: 'ab', maxNewTokens: 12 }));
    expect(result.kvCache).toBe(true);
    expect(chunks.map((c) => c.text).join('')).toBe(result.text);
    const prompt = chunks.filter((c) => c.prompt);
    const generated = chunks.filter((c) => !c.prompt);
    // BOS is not echoed; the dummy prefix " " and the two byte tokens are.
    expect(prompt.map((c) => c.id)).toEqual(result.ids.slice(1, result.promptTokens));
    expect(generated.map((c) => c.id)).toEqual(result.ids.slice(result.promptTokens));
    expect(generated).toHaveLength(result.newTokens);
    expect(result.maxLength).toEqual({ tokens: 512, source: expect.stringMatching(/rope\.cos/) });

    const greedy = await generateGreedy({ modelPath: model, prompt: 'ab', maxNewTokens: 12, kvCache: false });
    expect(greedy.kvCache).toBe(false);
    expect(greedy.ids).toEqual(result.ids);
  });

  it('with stop strings, the chunks still join to the result; the text from the stop string on is dropped', async () => {
    const full = await generateGreedy({ modelPath: model, prompt: 'ab', maxNewTokens: 24 });
    const completion = full.completion;
    // A stop string from the middle of the completion; where the text first has it, generation ends.
    const stopText = completion.slice(Math.floor(completion.length / 2), Math.floor(completion.length / 2) + 4);
    expect(stopText.length).toBe(4);
    const first = completion.indexOf(stopText);
    const { chunks, result } = await drain(generateStream({ modelPath: model, prompt: 'ab', maxNewTokens: 24, stop: [stopText] }));
    expect(result.stop).toBe('stop-text');
    expect(result.stopText).toBe(stopText);
    expect(result.completion).toBe(completion.slice(0, first));
    expect(chunks.map((c) => c.text).join('')).toBe(result.text);
    expect(result.ids).toEqual(full.ids.slice(0, result.ids.length));
    // A stop string that never comes changes nothing.
    const same = await generateGreedy({ modelPath: model, prompt: 'ab', maxNewTokens: 24, stop: ['\u0000never'] });
    expect(same.text).toBe(full.text);
    expect(same.stop).toBe(full.stop);
  });

  it('can be left early (for await ... break) and leaves a given session open', async () => {
    const session = await openDecoder(model);
    try {
      expect(session.step).toBeDefined();
      const ids: number[] = [];
      for await (const chunk of generateStream({ session, modelPath: model, prompt: 'x', maxNewTokens: 50 })) {
        if (!chunk.prompt) ids.push(chunk.id);
        if (ids.length === 3) break;
      }
      expect(ids).toHaveLength(3);
      // The session still runs.
      const again = await generateGreedy({ session, modelPath: model, prompt: 'x', maxNewTokens: 3 });
      expect(again.ids.slice(again.promptTokens)).toEqual(ids);
    } finally {
      await session.release();
    }
  });

  it('honours a maximum length given by the caller', async () => {
    const r = await generateGreedy({ modelPath: model, prompt: 'abc', maxNewTokens: 50, maxLength: { tokens: 8, source: 'test' } });
    expect(r.stop).toBe('max-length');
    expect(r.ids).toHaveLength(9);
    await expect(generateGreedy({ modelPath: model, prompt: 'abcdefgh', maxLength: { tokens: 8, source: 'test' } })).rejects.toThrow(
      /the prompt is 10 tokens but .* takes at most 8 \(test\); shorten the prompt/,
    );
  });
});

describe('modelMaxLength', () => {
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-maxlen-'));
    await importRandomLlama('tiny-260k', dir, { layers: 1 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prefers genai_config.json, then config.json, then the graph', () => {
    const model = path.join(dir, 'model.onnx');
    expect(modelMaxLength(model)).toEqual({ tokens: 512, source: 'the rope.cos table (rows indexed by position_ids)' });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ max_position_embeddings: 256 }));
    expect(modelMaxLength(model)).toEqual({ tokens: 256, source: 'config.json max_position_embeddings' });
    fs.writeFileSync(path.join(dir, 'genai_config.json'), JSON.stringify({ model: { context_length: 128 } }));
    expect(modelMaxLength(model)).toEqual({ tokens: 128, source: 'genai_config.json context_length' });
    // A config without a usable number is passed over.
    fs.writeFileSync(path.join(dir, 'genai_config.json'), JSON.stringify({ model: { context_length: -1 } }));
    expect(modelMaxLength(model)?.tokens).toBe(256);
  });
});

describe('random presets and the placeholder tokenizer', () => {
  it('has the published shapes', () => {
    expect(RANDOM_PRESETS['tinyllama-1.1b']).toMatchObject({ dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000 });
    expect(RANDOM_PRESETS['llama-7b']).toMatchObject({ dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 32000 });
  });

  it('rejects bad options before writing anything', async () => {
    const dir = path.join(os.tmpdir(), `w4a8-random-never-${process.pid}`);
    await expect(importRandomLlama('nope', dir)).rejects.toThrow(/unknown random model preset "nope"; presets: tinyllama-1\.1b, llama-7b/);
    await expect(importRandomLlama('tiny-260k', dir, { layers: 0 })).rejects.toThrow(RangeError);
    await expect(importRandomLlama('tiny-260k', dir, { seed: 1.5 })).rejects.toThrow(/Expected seed to be an integer >= 0 but received 1.5/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('writes a llama2.c tokenizer of the asked size that encodes any text byte by byte and decodes it back', () => {
    const tok = Llama2cTokenizer.fromBytes(placeholderLlama2cTokenizer(32000), 'placeholder');
    expect(tok.vocabSize).toBe(32000);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    const text = 'Hello, wörld! 123';
    const ids = tok.encode(text, { bos: true });
    // BOS, the dummy prefix, then one byte token per UTF-8 byte (a space is the " " piece).
    expect(ids).toEqual([1, 259, ...Array.from(Buffer.from(text, 'utf8'), (b) => (b === 0x20 ? 259 : b + 3))]);
    expect(tok.decode(ids)).toMatch(/Hello, wörld! 123$/);
    expect(tok.decodeToken(31999, 5)).toBe(' t31999');
    expect(() => placeholderLlama2cTokenizer(PLACEHOLDER_MIN_VOCAB - 1)).toThrow(RangeError);
  });
});
