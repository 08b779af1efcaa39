// Prompt lookup's drafts (the tokens after the latest earlier occurrence of the last 3 or 2 tokens)
// and the count of draft tokens a model's greedy picks confirm.
import { acceptedDraft, lookupDraft } from '../../lib/eval/prompt_lookup';

describe('lookupDraft', () => {
  it('proposes what followed the latest earlier occurrence of the longest matching tail', () => {
    // Tail [7, 8, 9] occurred at 1..3 (followed by 4, 5) and the bigram [8, 9] later at 6..7 (followed by 1):
    // the trigram wins over the later bigram.
    const ids = [0, 7, 8, 9, 4, 5, 8, 9, 1, 7, 8, 9];
    expect(lookupDraft(ids, 2)).toEqual([4, 5]);
    expect(lookupDraft(ids, 10)).toEqual([4, 5, 8, 9, 1, 7, 8, 9]);
    // Only a bigram matches: its latest occurrence.
    expect(lookupDraft([3, 1, 3, 2, 5, 3, 2], 3)).toEqual([5, 3, 2]);
    // A single token seen before is not enough.
    expect(lookupDraft([3, 1, 3, 2, 5, 3], 3)).toEqual([]);
    // The latest of two trigram occurrences.
    expect(lookupDraft([1, 2, 3, 9, 1, 2, 3, 8, 1, 2, 3], 1)).toEqual([8]);
  });

  it('proposes nothing when the tail never occurred, the sequence is too short, or no draft is wanted', () => {
    expect(lookupDraft([1, 2, 3, 4], 4)).toEqual([]);
    expect(lookupDraft([5], 4)).toEqual([]);
    expect(lookupDraft([], 4)).toEqual([]);
    expect(lookupDraft([1, 1, 1], 0)).toEqual([]);
    // A run of one token drafts the run.
    expect(lookupDraft([4, 4, 4, 4], 3)).toEqual([4]);
  });
});

describe('acceptedDraft', () => {
  it('counts the leading draft tokens the picks confirm', () => {
    expect(acceptedDraft([5, 6, 7], [5, 6, 7, 8])).toBe(3);
    expect(acceptedDraft([5, 6, 7], [5, 9, 7, 8])).toBe(1);
    expect(acceptedDraft([5, 6, 7], [1, 6, 7, 8])).toBe(0);
    expect(acceptedDraft([], [4])).toBe(0);
  });
});
