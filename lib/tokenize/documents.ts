// The perplexity protocol's data side, fixed so that numbers compare across tools:
// text -> documents (split on blank lines) -> one token stream (BOS per document) ->
// consecutive non-overlapping windows of ctx tokens, scored on positions 1..len-1.
import * as fs from 'node:fs';
import { W4A8Error } from '../util/errors';
import { readRegularFile } from '../util/regular_file';
import type { Tokenizer } from './tokenizer';

/** Read a text file as UTF-8 with CRLF turned into LF. */
export function readText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, 'text file', 2 ** 31, `text file not found: ${file}`);
  } catch (err) {
    if (err instanceof W4A8Error) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new W4A8Error(code === 'ENOENT' ? `text file not found: ${file}` : `cannot read text file ${file}: ${(err as Error).message}`);
  }
  return normalizeNewlines(bytes.toString('utf8'));
}

export function normalizeNewlines(text: string): string {
  return text.replace(/\r\n/g, '\n');
}

/** Documents: the text split on runs of blank lines, each trimmed, empty ones dropped. */
export function splitDocuments(text: string): string[] {
  return normalizeNewlines(text)
    .split(/\n\n+/)
    .map((d) => d.trim())
    .filter((d) => d.length > 0);
}

/** The token stream: encode(document, {bos: true}) of each document, concatenated. */
export function tokenStream(documents: string[], tokenizer: Tokenizer): number[] {
  const stream: number[] = [];
  for (const doc of documents) {
    for (const id of tokenizer.encode(doc, { bos: true })) stream.push(id);
  }
  return stream;
}

export interface Window {
  /** Offset of the window's first token in the stream. */
  start: number;
  /** Tokens to feed: the window, cut to predictions + 1 when max-tokens ends inside it. */
  length: number;
  /** Predictions scored: positions 1..length-1 (token t+1 given tokens start..t). */
  predictions: number;
}

/**
 * Cut `streamLength` tokens into consecutive windows of `ctx` (the last may be shorter) and
 * stop after `maxPredictions` predictions in all. A window of one token predicts nothing and
 * is dropped.
 */
export function planWindows(streamLength: number, ctx: number, maxPredictions: number): Window[] {
  if (!Number.isInteger(ctx) || ctx < 2) throw new RangeError(`Expected ctx to be an integer >= 2 but received ${ctx}`);
  if (!Number.isInteger(maxPredictions) || maxPredictions < 1) {
    throw new RangeError(`Expected maxPredictions to be an integer >= 1 but received ${maxPredictions}`);
  }
  const windows: Window[] = [];
  let left = maxPredictions;
  for (let start = 0; start < streamLength && left > 0; start += ctx) {
    const full = Math.min(ctx, streamLength - start);
    const predictions = Math.min(full - 1, left);
    if (predictions <= 0) break;
    // A causal model's logits at t depend only on tokens <= t: feeding the cut prefix is exact.
    windows.push({ start, length: predictions + 1, predictions });
    left -= predictions;
  }
  return windows;
}
