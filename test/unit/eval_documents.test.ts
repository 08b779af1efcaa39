import { planWindows, splitDocuments, tokenStream } from '../../lib/tokenize/documents';
import { toyTokenizer } from '../helpers/eval_fixtures';

describe('perplexity protocol: documents, token stream, windows', () => {
  it('splits on blank-line runs, turns CRLF into LF, trims and drops empty documents', () => {
    const text = '\r\n  first doc\r\nline two \r\n\r\n\r\nsecond\n\n \n\nthird\n\n\n';
    // "\n \n" is not a blank-line run (a space sits between), so it stays inside a document and is trimmed away.
    expect(splitDocuments(text)).toEqual(['first doc\nline two', 'second', 'third']);
    expect(splitDocuments('')).toEqual([]);
    expect(splitDocuments('\n\n\n   \n\n')).toEqual([]);
    expect(splitDocuments('one\ntwo')).toEqual(['one\ntwo']);
  });

  it('concatenates encode(document, {bos: true}) over documents', () => {
    const tok = toyTokenizer();
    expect(tokenStream(['ab', 'c'], tok)).toEqual([1, 3, 4, 1, 5]);
    expect(tokenStream([], tok)).toEqual([]);
  });

  it('cuts consecutive non-overlapping windows of ctx; the last may be shorter', () => {
    expect(planWindows(10, 4, 1000)).toEqual([
      { start: 0, length: 4, predictions: 3 },
      { start: 4, length: 4, predictions: 3 },
      { start: 8, length: 2, predictions: 1 },
    ]);
    // A last window of one token predicts nothing and is not counted.
    expect(planWindows(9, 4, 1000)).toEqual([
      { start: 0, length: 4, predictions: 3 },
      { start: 4, length: 4, predictions: 3 },
    ]);
  });

  it('stops after max predictions, cutting the last window', () => {
    expect(planWindows(100, 4, 7)).toEqual([
      { start: 0, length: 4, predictions: 3 },
      { start: 4, length: 4, predictions: 3 },
      { start: 8, length: 2, predictions: 1 },
    ]);
    expect(planWindows(100, 4, 6)).toHaveLength(2);
    const w = planWindows(20000 * 3, 512, 20000);
    expect(w.reduce((s, x) => s + x.predictions, 0)).toBe(20000);
    expect(w).toHaveLength(Math.ceil(20000 / 511));
    expect(w[w.length - 1].predictions).toBe(20000 - 511 * (w.length - 1));
  });

  it('rejects ctx < 2 and max predictions < 1', () => {
    expect(() => planWindows(10, 1, 5)).toThrow(RangeError);
    expect(() => planWindows(10, 2.5, 5)).toThrow(RangeError);
    expect(() => planWindows(10, 4, 0)).toThrow(RangeError);
  });
});
