// Calibration windows follow the eval protocol (lib/eval/documents.ts): documents split on blank
// lines, BOS per document, one concatenated stream, then consecutive non-overlapping windows of
// `seqlen` tokens, up to `maxTokens` tokens in all.
import { W4A8Error } from '../util/errors';
import { splitDocuments, tokenStream } from '../tokenize/documents';
import type { Tokenizer } from '../tokenize/tokenizer';

export interface CalibWindows {
  windows: number[][];
  /** Tokens used in all. */
  tokens: number;
  /** Set when the text gave fewer tokens than asked for. */
  warning?: string;
}

export function calibrationWindows(text: string, label: string, tokenizer: Tokenizer, seqlen: number, maxTokens: number): CalibWindows {
  if (!Number.isInteger(seqlen) || seqlen < 1) throw new RangeError(`Expected --calib-seqlen to be a positive integer but received ${seqlen}`);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`Expected --calib-tokens to be a positive integer but received ${maxTokens}`);
  const stream = tokenStream(splitDocuments(text), tokenizer);
  if (stream.length === 0) throw new W4A8Error(`calibration text ${label} gives no tokens (it is empty or only whitespace); give a text to calibrate on`);
  const limit = Math.min(stream.length, maxTokens);
  const windows: number[][] = [];
  for (let start = 0; start < limit; start += seqlen) windows.push(stream.slice(start, Math.min(start + seqlen, limit)));
  const result: CalibWindows = { windows, tokens: limit };
  if (stream.length < maxTokens) {
    result.warning = `calibration text ${label} gives ${stream.length} tokens, fewer than --calib-tokens ${maxTokens}; calibrating on all ${stream.length}`;
  }
  return result;
}
