// Text generation as llama2.c's `run` does it: the prompt starts with BOS, and a generated BOS
// (llama2.c's end-of-story convention) or EOS ends the text. Greedy by default (temperature 0);
// with a temperature, tokens are sampled (top-k, top-p, a seed: sampler.ts). A model with a
// key/value cache is run once over the prompt (prefill), then on one token per step; a model
// without one recomputes the whole sequence every step. Both pick the same tokens.
// `generateStream` yields the text as it is decided; `generateText` collects it.
import { W4A8Error } from '../util/errors';
import type { Tokenizer } from '../tokenize/tokenizer';
import { CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { checkIdsFit, resolveTokenizer } from '../tokenize/model_tokenizer';
import { checkModelFile, DecoderSession, KvCache, openDecoder } from '../ort/session';
import type { Engine } from '../ort/engine_session';
import { modelMaxLength, type MaxLength } from '../onnx/max_length';
import { createSampler, type SamplingOptions, type SamplingSettings } from './sampler';
import { checkStopStrings, StopTextScanner } from './stop_text';
import { acceptedDraft, lookupDraft } from './prompt_lookup';

export interface GenerateOptions extends SamplingOptions {
  modelPath?: string;
  session?: DecoderSession;
  /** Prompt text (default empty: generation starts from BOS alone). */
  prompt?: string;
  /** New tokens at most (default 256). */
  maxNewTokens?: number;
  tokenizer?: Tokenizer | string;
  /** Which session runs a model opened from modelPath (default: w4a8 for models with com.w4a8 nodes, else ort). */
  engine?: Engine;
  /** Use the model's key/value cache when it has one (default true); false recomputes every step. */
  kvCache?: boolean;
  /**
   * The model's maximum sequence length (default: read beside / from the model file; with only
   * a session, none). Generation stops there; a longer prompt is an error.
   */
  maxLength?: MaxLength;
  /**
   * Stop strings: generation ends when the completion contains one, and the text from it on is
   * dropped. Text that could begin one is held back until it cannot (so a chunk's text may be
   * empty, or hold earlier tokens' text); what is still held when generation ends otherwise comes
   * in a last chunk with id -1.
   */
  stop?: string[];
  /**
   * Prompt-lookup decoding (greedy only, models with a KV cache): up to this many draft tokens per
   * step, taken from where the sequence's last tokens occurred before, checked in one pass; the
   * tokens are the same as without it (default 0: off).
   */
  lookup?: number;
  /** Called with each piece of text as it is decided (prompt pieces first, as llama2.c prints them). */
  onText?: (piece: string) => void;
  progress?: Progress;
  cancel?: CancelToken;
}

export type StopReason = 'bos' | 'eos' | 'max-new-tokens' | 'max-length' | 'stop-text';

/** One piece of streamed text: a prompt token echoed, or a generated token. */
export interface GenerateChunk {
  text: string;
  /** The token chosen at this step; -1 for text held back for stop strings and released at the end. */
  id: number;
  /** True for the prompt's own tokens (echoed first, as llama2.c prints them). */
  prompt: boolean;
}

export interface GenerateResult {
  /** Everything streamed: the prompt's pieces then the completion. */
  text: string;
  /** The generated part only. */
  completion: string;
  /** Prompt ids (BOS included) followed by the generated ids. */
  ids: number[];
  promptTokens: number;
  newTokens: number;
  stop: StopReason;
  /** The stop string that ended generation (stop 'stop-text'). */
  stopText?: string;
  /** Whether the model's key/value cache was used. */
  kvCache: boolean;
  /** How tokens were chosen (temperature 0: greedy); with the seed when sampling, to repeat the run. */
  sampling: SamplingSettings;
  /** The maximum length that applied, when one is known. */
  maxLength?: MaxLength;
  /** With `lookup`: draft tokens per step, drafted and confirmed in all, and the forward passes run. */
  lookup?: { draftTokens: number; drafted: number; confirmed: number; passes: number };
  /** Milliseconds of the first forward pass (the whole prompt) and of all later ones. */
  prefillMs: number;
  decodeMs: number;
  /** Prompt tokens per second of the first pass; tokens per second of the later passes (0 when none). */
  prefillTokPerS: number;
  decodeTokPerS: number;
}

function checkOptions(opts: GenerateOptions): { maxNewTokens: number; prompt: string; stopStrings: string[]; lookupTokens: number } {
  if (opts === null || typeof opts !== 'object') throw new TypeError('Expected generate options (an object)');
  const maxNewTokens = opts.maxNewTokens ?? 256;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`Expected maxNewTokens to be an integer >= 0 but received ${maxNewTokens}`);
  }
  if (!opts.session && typeof opts.modelPath !== 'string') throw new TypeError('Expected modelPath (a string) or an open session');
  const prompt = opts.prompt ?? '';
  if (typeof prompt !== 'string') throw new TypeError('Expected prompt to be a string');
  if (opts.kvCache !== undefined && typeof opts.kvCache !== 'boolean') throw new TypeError(`Expected kvCache to be a boolean but received ${String(opts.kvCache)}`);
  if (opts.maxLength !== undefined && !(Number.isInteger(opts.maxLength.tokens) && opts.maxLength.tokens > 0)) {
    throw new RangeError(`Expected maxLength.tokens to be a positive integer but received ${String(opts.maxLength.tokens)}`);
  }
  const lookupTokens = opts.lookup ?? 0;
  if (!Number.isInteger(lookupTokens) || lookupTokens < 0 || lookupTokens > 64) {
    throw new RangeError(`Expected lookup to be an integer in [0, 64] but received ${lookupTokens}`);
  }
  if (lookupTokens > 0 && (opts.temperature ?? 0) !== 0) {
    throw new RangeError('Expected temperature 0 with lookup: prompt-lookup decoding checks drafts against the greedy choice');
  }
  return { maxNewTokens, prompt, stopStrings: checkStopStrings(opts.stop), lookupTokens };
}

/**
 * Generation as an async iterator: yields the prompt's pieces, then each new token as soon as it
 * is chosen; its return value is the whole result. Breaking out of the loop releases the session
 * it opened.
 */
export async function* generateStream(opts: GenerateOptions): AsyncGenerator<GenerateChunk, GenerateResult, undefined> {
  const { maxNewTokens, prompt, stopStrings, lookupTokens } = checkOptions(opts);
  const sampler = createSampler(opts);
  const scanner = stopStrings.length > 0 ? new StopTextScanner(stopStrings) : undefined;
  let stopText: string | undefined;
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  if (!opts.session) checkModelFile(opts.modelPath!);
  const tokenizer = resolveTokenizer(opts.tokenizer, opts.modelPath);
  const label = opts.modelPath ?? 'the model';

  const ids = tokenizer.encode(prompt, { bos: true });
  if (ids.length === 0 && tokenizer.bosId !== undefined) ids.push(tokenizer.bosId);
  if (ids.length === 0) throw new W4A8Error('the prompt gives no tokens and the tokenizer has no BOS to start from; give --prompt <text>');
  const promptTokens = ids.length;
  const maxLength = opts.maxLength ?? (opts.modelPath ? modelMaxLength(opts.modelPath) : undefined);
  if (maxLength && promptTokens > maxLength.tokens) {
    throw new W4A8Error(
      `the prompt is ${promptTokens} tokens but ${label} takes at most ${maxLength.tokens} (${maxLength.source}); shorten the prompt`,
    );
  }

  let text = '';
  // llama2.c prints each forced prompt token after BOS as it steps through the prompt; a
  // tokenizer that adds no BOS has real text in its first token, which is printed too.
  const first = ids[0] === tokenizer.bosId ? 1 : 0;
  const promptChunks: GenerateChunk[] = [];
  for (let i = first; i < ids.length; i++) {
    const piece = tokenizer.decodeToken(ids[i], i > 0 ? ids[i - 1] : undefined);
    text += piece;
    promptChunks.push({ text: piece, id: ids[i], prompt: true });
  }
  const promptText = text;

  const session = opts.session ?? (await openDecoder(opts.modelPath!, opts.engine !== undefined ? { engine: opts.engine } : {}));
  const useCache = (opts.kvCache ?? true) && session.step !== undefined;
  let stop: StopReason = 'max-new-tokens';
  let prefillMs = 0;
  let decodeMs = 0;
  let passes = 0;
  let decodeTokens = 0;
  // Prompt lookup (greedy, with the cache): draft tokens proposed and confirmed.
  const lookup = useCache && session.rewind !== undefined ? lookupTokens : 0;
  let drafted = 0;
  let confirmed = 0;
  try {
    checkIdsFit(ids, session.vocab, 'the prompt');
    for (const chunk of promptChunks) yield chunk;
    progress.start('generate', maxNewTokens);
    let cache: KvCache | undefined;
    let produced = 0;
    outer: while (produced < maxNewTokens) {
      cancel.throwIfCancelled();
      // The next forward pass covers positions 0..ids.length-1.
      if (maxLength && ids.length > maxLength.tokens) {
        stop = 'max-length';
        break;
      }
      const t0 = performance.now();
      let picks: number[];
      if (useCache) {
        // Drafts after the prefill, within the new-token budget and the model's length.
        const room = Math.min(maxNewTokens - produced - 1, maxLength ? maxLength.tokens - ids.length : Infinity);
        const draft = cache && lookup > 0 ? lookupDraft(ids, Math.min(lookup, room)) : [];
        if (draft.length > 0) {
          // One pass over the newest token and the draft: row i is the model's choice after draft[0..i).
          const start = cache!.length;
          const r = await session.step!([ids[ids.length - 1], ...draft], cache, { allLogits: true });
          const greedy = Array.from({ length: draft.length + 1 }, (_, i) => sampler.pick(r.logits, i));
          const accepted = acceptedDraft(draft, greedy);
          picks = greedy.slice(0, accepted + 1);
          // The cache keeps the newest token and the confirmed draft; the last pick is fed next.
          cache = session.rewind!(r.cache, start + 1 + accepted);
          drafted += draft.length;
          confirmed += accepted;
        } else {
          // Prefill once, then feed only the newest token; the step returns the last row only.
          const r = await session.step!(cache ? [ids[ids.length - 1]] : ids, cache);
          cache = r.cache;
          picks = [sampler.pick(r.logits, r.logits.seq - 1)];
        }
      } else {
        const logits = await session.logits(ids);
        picks = [sampler.pick(logits, logits.seq - 1)];
      }
      const ms = performance.now() - t0;
      if (passes === 0) prefillMs = ms;
      else {
        decodeMs += ms;
        decodeTokens += picks.length;
      }
      passes++;
      for (const next of picks) {
        if (next < 0) throw new W4A8Error(`the model produced NaN logits at step ${produced + 1}; cannot pick a token`);
        if (next === tokenizer.bosId) {
          stop = 'bos';
          break outer;
        }
        if (next === tokenizer.eosId) {
          stop = 'eos';
          break outer;
        }
        // The model may be wider than the tokenizer (padded vocabularies): such an id has no text.
        if (next >= tokenizer.vocabSize) {
          throw new W4A8Error(`the model chose token id ${next}, which the tokenizer (${tokenizer.vocabSize} ids) cannot decode; pass the model's own --tokenizer`);
        }
        const decoded = tokenizer.decodeToken(next, ids[ids.length - 1]);
        ids.push(next);
        produced++;
        progress.update(produced);
        const scan = scanner ? scanner.push(decoded) : { release: decoded };
        text += scan.release;
        yield { text: scan.release, id: next, prompt: false };
        if (scan.matched !== undefined) {
          stop = 'stop-text';
          stopText = scan.matched;
          break outer;
        }
      }
      // session.run blocks the event loop: let output and Ctrl-C through between steps.
      await yieldToEventLoop();
    }
    progress.stop();
    const held = scanner?.flush() ?? '';
    if (held) {
      text += held;
      yield { text: held, id: -1, prompt: false };
    }
  } finally {
    if (!opts.session) await session.release();
  }
  const newTokens = ids.length - promptTokens;
  return {
    text,
    completion: text.slice(promptText.length),
    ids,
    promptTokens,
    newTokens,
    stop,
    ...(stopText !== undefined ? { stopText } : {}),
    kvCache: useCache,
    sampling: sampler.settings,
    ...(maxLength ? { maxLength } : {}),
    prefillMs,
    decodeMs,
    prefillTokPerS: prefillMs > 0 ? (promptTokens * 1000) / prefillMs : 0,
    decodeTokPerS: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
    ...(lookup > 0 ? { lookup: { draftTokens: lookup, drafted, confirmed, passes } } : {}),
  };
}

/** Generation to the end; `onText` receives each piece as it is decided. */
export async function generateText(opts: GenerateOptions): Promise<GenerateResult> {
  const stream = generateStream(opts);
  for (;;) {
    const r = await stream.next();
    if (r.done) return r.value;
    if (r.value.text && opts.onText) opts.onText(r.value.text);
  }
}

/** The name of generateText from before sampling existed: greedy unless `temperature` is set. */
export const generateGreedy = generateText;
