// The tokenizer that goes with a model: the one given (object or file), else the one stored
// beside the model file.
import { W4A8Error } from '../util/errors';
import { findTokenizerBeside, loadTokenizer } from './load';
import type { Tokenizer } from './tokenizer';

export function resolveTokenizer(tokenizer: Tokenizer | string | undefined, modelPath: string | undefined): Tokenizer {
  if (tokenizer !== undefined && typeof tokenizer !== 'string') return tokenizer;
  if (typeof tokenizer === 'string') return loadTokenizer(tokenizer);
  const beside = modelPath ? findTokenizerBeside(modelPath) : undefined;
  if (!beside) {
    throw new W4A8Error(`no tokenizer found beside ${modelPath ?? 'the model'} (tokenizer.json, tokenizer.bin or tok*.bin); pass --tokenizer <file>`);
  }
  return loadTokenizer(beside);
}

/** A tokenizer fits a model when every id it produced is a row of the model's logits. */
export function checkIdsFit(ids: ArrayLike<number>, vocab: number, what: string): void {
  let max = -1;
  for (let i = 0; i < ids.length; i++) if (ids[i] > max) max = ids[i];
  if (max >= vocab) {
    throw new W4A8Error(
      `${what} contains token id ${max} but the model's logits have ${vocab} entries; the tokenizer does not fit this model ` +
        `(pass the model's own --tokenizer; for a test model whose vocabulary is deliberately smaller than its tokenizer's, --oov-id <id> maps the ids that do not fit)`,
    );
  }
}

/**
 * Replace every id >= vocab by `oovId`, in place; returns how many were replaced. For test exports
 * (tiny-random-gpt2 has 1000 logits but ships the 50257-entry GPT-2 tokenizer): the perplexity then
 * measures the pipeline, not the model, and the caller says so.
 */
export function mapOutOfVocabulary(ids: number[], vocab: number, oovId: number): number {
  if (!Number.isInteger(oovId) || oovId < 0 || oovId >= vocab) {
    throw new RangeError(`Expected oovId to be an integer in [0, ${vocab}) (the model's vocabulary) but received ${oovId}`);
  }
  let mapped = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] >= vocab) {
      ids[i] = oovId;
      mapped++;
    }
  }
  return mapped;
}
