// Draft tokens for greedy decoding by prompt lookup: the last few tokens of the sequence are
// looked for earlier in it, and the tokens that followed them there are proposed as the next ones.
// One forward pass then checks the whole draft (the model's greedy choice after each prefix), so a
// step can add several tokens for about the cost of one when decoding is bound by reading weights.
// Text that repeats itself (stories, quoting the prompt, code, summaries) gives the most.

/**
 * The longest and shortest tails matched, longest first. No single-token tails: on stories260K they
 * doubled the drafted tokens for a quarter more confirmed ones (scripts/bench-lookup.js), and a
 * rejected draft costs a wider pass (docs/BENCHMARKS.md, "Prompt lookup").
 */
const MAX_NGRAM = 3;
const MIN_NGRAM = 2;

/**
 * Up to `maxDraft` tokens that followed the most recent earlier occurrence of the sequence's last
 * n tokens (n = 3, else 2); empty when neither occurs.
 */
export function lookupDraft(ids: readonly number[], maxDraft: number): number[] {
  if (maxDraft <= 0) return [];
  for (let n = Math.min(MAX_NGRAM, ids.length - 1); n >= MIN_NGRAM; n--) {
    const tail = ids.length - n;
    // Latest first: the nearest context predicts best. A match at i leaves i + n <= ids.length - 1.
    for (let i = tail - 1; i >= 0; i--) {
      let k = 0;
      while (k < n && ids[i + k] === ids[tail + k]) k++;
      if (k === n) return ids.slice(i + n, Math.min(i + n + maxDraft, ids.length));
    }
  }
  return [];
}

/**
 * How many draft tokens the model confirmed: `picks[i]` is its greedy choice after the draft's
 * first i tokens, so the draft holds while picks[i] === draft[i]. The tokens to keep are
 * picks[0..accepted] (the confirmed draft plus the model's next choice).
 */
export function acceptedDraft(draft: readonly number[], picks: readonly number[]): number {
  let a = 0;
  while (a < draft.length && a < picks.length - 1 && picks[a] === draft[a]) a++;
  return a;
}
