// Hugging Face tokenizer.json through @huggingface/tokenizers (the JS port of the Rust crate):
// we adapt its API to our Tokenizer interface and never re-implement a tokenizer model here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { W4A8Error } from '../util/errors';
import { readRegularFile } from '../util/regular_file';
import { resolvesInside } from '../util/containment';
import type { Tokenizer } from './tokenizer';

type Json = Record<string, unknown>;

/** Names used for BOS/EOS across common tokenizer.json files when tokenizer_config.json is absent. */
const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<|startoftext|>', '<bos>', '<|endoftext|>'];
const EOS_NAMES = ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>', '<|im_end|>'];

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  private readonly impl: HfTokenizerImpl;

  /** `tokenizerJson` is the parsed tokenizer.json; `config` the parsed tokenizer_config.json (or {}). */
  constructor(tokenizerJson: Json, config: Json = {}, source = 'tokenizer.json') {
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, config);
    } catch (err) {
      throw new W4A8Error(`${source} could not be loaded by @huggingface/tokenizers: ${(err as Error).message}`);
    }
    // Ids may have gaps (added tokens past the model vocabulary): the size is the largest id + 1.
    let maxId = -1;
    for (const id of this.impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    if (maxId < 0) throw new W4A8Error(`${source} has an empty vocabulary`);
    this.vocabSize = maxId + 1;
    this.bosId = this.specialId(config.bos_token, BOS_NAMES);
    this.eosId = this.specialId(config.eos_token, EOS_NAMES);
  }

  /** Load tokenizer.json, with tokenizer_config.json from the same folder when it is there. */
  static fromFile(file: string): HfTokenizer {
    const json = readJson(file);
    const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
    if (fs.existsSync(configFile) && !resolvesInside(path.dirname(file), configFile)) {
      throw new W4A8Error(`${configFile} resolves outside its folder ${path.dirname(file)} (a symbolic link); config files beside a tokenizer must lie in its folder`);
    }
    const config = fs.existsSync(configFile) ? readJson(configFile) : {};
    return new HfTokenizer(json, config, file);
  }

  private specialId(configured: unknown, fallbacks: string[]): number | undefined {
    // tokenizer_config.json gives either "<s>" or an AddedToken object {content: "<s>", ...}.
    const name =
      typeof configured === 'string' ? configured : configured && typeof configured === 'object' ? (configured as Json).content : undefined;
    if (typeof name === 'string') return this.impl.token_to_id(name);
    for (const candidate of fallbacks) {
      const id = this.impl.token_to_id(candidate);
      if (id !== undefined) return id;
    }
    return undefined;
  }

  /**
   * `bos: true` applies the tokenizer's own post-processor (its default special tokens), as
   * transformers does with add_special_tokens=True: Llama adds <s>, GPT-2 adds nothing.
   */
  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: opts.bos === true }).ids;
  }

  decode(ids: number[]): string {
    for (const id of ids) this.checkId(id);
    return this.impl.decode(ids, { skip_special_tokens: true });
  }

  /**
   * One token's text in a stream: the text [previous, id] decodes to beyond what [previous]
   * alone decodes to, so decoders that strip a leading space or join bytes stay correct.
   */
  decodeToken(id: number, previousId?: number): string {
    this.checkId(id);
    if (previousId === undefined) return this.impl.decode([id], { skip_special_tokens: true });
    this.checkId(previousId);
    const before = this.impl.decode([previousId], { skip_special_tokens: true });
    const both = this.impl.decode([previousId, id], { skip_special_tokens: true });
    return both.startsWith(before) ? both.slice(before.length) : this.impl.decode([id], { skip_special_tokens: true });
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary 0..${this.vocabSize - 1}`);
    }
  }
}

function readJson(file: string): Json {
  let text: string;
  try {
    text = readRegularFile(file, 'tokenizer', 2 ** 31, `cannot read ${file}: ENOENT`).toString('utf8');
  } catch (err) {
    if (err instanceof W4A8Error) throw err;
    throw new W4A8Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new W4A8Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new W4A8Error(`${file} is not a JSON object`);
  return value as Json;
}
