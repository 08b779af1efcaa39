// Picks the tokenizer implementation for a file, and finds the tokenizer stored beside a model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import { HfTokenizer } from './hf';
import { Llama2cTokenizer } from './llama2c';
import type { Tokenizer } from './tokenizer';

/**
 * Load a tokenizer: a file that ends in .json or starts with `{` is a Hugging Face
 * tokenizer.json; anything else is read as a llama2.c tok*.bin.
 */
export function loadTokenizer(file: string): Tokenizer {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError(`tokenizer path must be a non-empty string, got ${String(file)}`);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new W4A8Error(`tokenizer ${file} does not exist; pass --tokenizer <tokenizer.json | tok*.bin>`);
  }
  if (!stat.isFile()) throw new W4A8Error(`tokenizer ${file} is not a file`);
  if (file.toLowerCase().endsWith('.json') || startsWithBrace(file)) return HfTokenizer.fromFile(file);
  return Llama2cTokenizer.fromBytes(fs.readFileSync(file), file);
}

function startsWithBrace(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).toString('utf8').trimStart().startsWith('{');
  } finally {
    fs.closeSync(fd);
  }
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
  for (const fixed of ['tokenizer.json', 'tokenizer.bin']) {
    if (names.includes(fixed)) return path.join(dir, fixed);
  }
  const tok = names.filter((n) => /^tok.*\.bin$/.test(n)).sort();
  return tok.length > 0 ? path.join(dir, tok[0]) : undefined;
}
