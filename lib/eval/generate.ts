// Greedy decoding with a full-sequence recompute per step (no KV cache: the session feeds the
// past empty), matching llama2.c's `run` at temperature 0: the prompt starts with BOS, and a
// generated BOS (llama2.c's end-of-story convention) or EOS ends the text.
import { W4A8Error } from '../util/errors';
import { argmaxRow } from '../native/eval_ops';
import type { Tokenizer } from '../tokenize/tokenizer';
import { CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { checkIdsFit, resolveTokenizer } from '../tokenize/model_tokenizer';
import { checkModelFile, DecoderSession, openDecoder } from '../ort/session';

export interface GenerateOptions {
  modelPath?: string;
  session?: DecoderSession;
  /** Prompt text (default empty: generation starts from BOS alone). */
  prompt?: string;
  /** New tokens at most (default 256). */
  maxNewTokens?: number;
  tokenizer?: Tokenizer | string;
  /** Called with each piece of text as it is decided (prompt pieces first, as llama2.c prints them). */
  onText?: (piece: string) => void;
  progress?: Progress;
  cancel?: CancelToken;
}

export type StopReason = 'bos' | 'eos' | 'max-new-tokens';

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
}

export async function generateGreedy(opts: GenerateOptions): Promise<GenerateResult> {
  const maxNewTokens = opts.maxNewTokens ?? 256;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`Expected maxNewTokens to be an integer >= 0 but received ${maxNewTokens}`);
  }
  if (!opts.session && typeof opts.modelPath !== 'string') throw new TypeError('Expected modelPath (a string) or an open session');
  const prompt = opts.prompt ?? '';
  if (typeof prompt !== 'string') throw new TypeError('Expected prompt to be a string');
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  if (!opts.session) checkModelFile(opts.modelPath!);
  const tokenizer = resolveTokenizer(opts.tokenizer, opts.modelPath);

  const ids = tokenizer.encode(prompt, { bos: true });
  if (ids.length === 0 && tokenizer.bosId !== undefined) ids.push(tokenizer.bosId);
  if (ids.length === 0) throw new W4A8Error('the prompt gives no tokens and the tokenizer has no BOS to start from; give --prompt <text>');
  const promptTokens = ids.length;

  let text = '';
  const emit = (piece: string) => {
    text += piece;
    if (piece && opts.onText) opts.onText(piece);
  };
  // llama2.c prints each forced prompt token after BOS as it steps through the prompt; a
  // tokenizer that adds no BOS has real text in its first token, which is printed too.
  const first = ids[0] === tokenizer.bosId ? 1 : 0;
  for (let i = first; i < ids.length; i++) emit(tokenizer.decodeToken(ids[i], i > 0 ? ids[i - 1] : undefined));
  const promptText = text;

  const session = opts.session ?? (await openDecoder(opts.modelPath!));
  let stop: StopReason = 'max-new-tokens';
  try {
    checkIdsFit(ids, session.vocab, 'the prompt');
    progress.start('generate', maxNewTokens);
    for (let step = 0; step < maxNewTokens; step++) {
      cancel.throwIfCancelled();
      const logits = await session.logits(ids);
      const next = argmaxRow(logits, logits.seq - 1);
      if (next < 0) throw new W4A8Error(`the model produced NaN logits at step ${step + 1}; cannot pick a token`);
      if (next === tokenizer.bosId) {
        stop = 'bos';
        break;
      }
      if (next === tokenizer.eosId) {
        stop = 'eos';
        break;
      }
      // The model may be wider than the tokenizer (padded vocabularies): such an id has no text.
      if (next >= tokenizer.vocabSize) {
        throw new W4A8Error(`the model chose token id ${next}, which the tokenizer (${tokenizer.vocabSize} ids) cannot decode; pass the model's own --tokenizer`);
      }
      emit(tokenizer.decodeToken(next, ids[ids.length - 1]));
      ids.push(next);
      progress.update(step + 1);
      // session.run blocks the event loop: let output and Ctrl-C through between steps.
      await yieldToEventLoop();
    }
    progress.stop();
  } finally {
    if (!opts.session) await session.release();
  }
  return {
    text,
    completion: text.slice(promptText.length),
    ids,
    promptTokens,
    newTokens: ids.length - promptTokens,
    stop,
  };
}
