// Picks the tokenizer implementation for a file, and finds the tokenizer stored beside a model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import { readRegularFile } from '../util/regular_file';
import { resolvesInside } from '../util/containment';
import { HfTokenizer } from './hf';
import { Llama2cTokenizer } from './llama2c';
import type { Tokenizer } from './tokenizer';

/**
 * Load a tokenizer: a file that ends in .json or starts with `{` is a Hugging Face
 * tokenizer.json; anything else is read as a llama2.c tok*.bin.
 */
export function loadTokenizer(file: string): Tokenizer {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError(`tokenizer path must be a non-empty string, got ${String(file)}`);
  if (!fs.existsSync(file)) throw new W4A8Error(`tokenizer ${file} does not exist; pass --tokenizer <tokenizer.json | tok*.bin>`);
  // One read of a checked regular file (a FIFO or /dev/zero is refused before reading).
  const bytes = readRegularFile(file, 'tokenizer', 1 << 30);
  const head = bytes.subarray(0, 64).toString('utf8').trimStart();
  if (file.toLowerCase().endsWith('.json') || head.startsWith('{')) return HfTokenizer.fromFile(file);
  return Llama2cTokenizer.fromBytes(bytes, file);
}

/**
 * The tokenizer stored with a model: tokenizer.json, tokenizer.bin, then tok*.bin (sorted by
 * name) in the model file's folder. `modelPath` may be the model file or its folder.
 */
export function findTokenizerBeside(modelPath: string): string | undefined {
  let dir = modelPath;
  try {
    if (!fs.statSync(modelPath).isDirectory()) dir = path.dirname(modelPath);
  } catch {
    dir = path.dirname(modelPath);
  }
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  // Found beside the model means inside its folder after following links: a link out of it is refused.
  const inside = (name: string): string => {
    const file = path.join(dir, name);
    if (!resolvesInside(dir, file)) {
      throw new W4A8Error(`tokenizer ${file} beside the model resolves outside the model's folder ${dir} (a symbolic link); copy the file there or pass --tokenizer`);
    }
    return file;
  };
  for (const fixed of ['tokenizer.json', 'tokenizer.bin']) {
    if (names.includes(fixed)) return inside(fixed);
  }
  const tok = names.filter((n) => /^tok.*\.bin$/.test(n)).sort();
  return tok.length > 0 ? inside(tok[0]) : undefined;
}
