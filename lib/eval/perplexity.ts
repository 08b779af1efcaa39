// Perplexity of a decoder ONNX model on a text, under the fixed protocol of documents.ts:
// ppl = exp(total NLL / predictions), NLL from the native log-softmax over each window's logits.
import { W4A8Error } from '../util/errors';
import { tokenNll } from '../native/eval_ops';
import type { Tokenizer } from '../tokenize/tokenizer';
import { CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { planWindows, readText, splitDocuments, tokenStream } from '../tokenize/documents';
import { checkIdsFit, mapOutOfVocabulary, resolveTokenizer } from '../tokenize/model_tokenizer';
import { checkModelFile, DecoderSession, openDecoder } from '../ort/session';
import type { Engine } from '../ort/engine_session';
import { modelMaxLength, type MaxLength } from '../onnx/max_length';

export interface PerplexityOptions {
  /** The ONNX model (ignored for loading when `session` is given, still used to find its tokenizer). */
  modelPath?: string;
  /** An already-open decoder, e.g. to evaluate one model on several texts. */
  session?: DecoderSession;
  /** The text: a file (UTF-8) or the text itself. */
  textPath?: string;
  text?: string;
  /** A tokenizer or its file; default: the tokenizer beside the model. */
  tokenizer?: Tokenizer | string;
  /** Window length in tokens (default 512); capped, with a warning, at the model's maximum length. */
  ctx?: number;
  /** The model's maximum sequence length (default: read beside / from the model file; with only a session, none). */
  maxLength?: MaxLength;
  /** Predictions scored at most (default 20000). */
  maxTokens?: number;
  /** Map token ids the model has no logits row for to this id (with a warning) instead of failing. */
  oovId?: number;
  /** Which session runs the model (lib/ort/engine_session.ts); default: picked from the model's domains. */
  engine?: Engine;
  progress?: Progress;
  cancel?: CancelToken;
}

export interface PerplexityResult {
  ppl: number;
  /** Mean NLL per prediction (natural log). */
  nll: number;
  /** Predictions scored. */
  tokens: number;
  windows: number;
  ctx: number;
}

export async function evaluatePerplexity(opts: PerplexityOptions): Promise<PerplexityResult> {
  let ctx = opts.ctx ?? 512;
  const maxTokens = opts.maxTokens ?? 20000;
  if (!Number.isInteger(ctx) || ctx < 2) throw new RangeError(`Expected ctx to be an integer >= 2 but received ${ctx}`);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`Expected maxTokens to be an integer >= 1 but received ${maxTokens}`);
  if (!opts.session && typeof opts.modelPath !== 'string') throw new TypeError('Expected modelPath (a string) or an open session');
  if ((opts.text === undefined) === (opts.textPath === undefined)) throw new TypeError('Give exactly one of text and textPath');
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;

  if (!opts.session) checkModelFile(opts.modelPath!);
  const label = opts.textPath ?? 'the text';
  const text = opts.textPath !== undefined ? readText(opts.textPath) : opts.text!;
  const tokenizer = resolveTokenizer(opts.tokenizer, opts.modelPath);
  const stream = tokenStream(splitDocuments(text), tokenizer);
  if (stream.length === 0) throw new W4A8Error(`${label} gives no tokens (it is empty or only whitespace); give a text to evaluate on`);
  if (stream.length < 2) throw new W4A8Error(`${label} gives only ${stream.length} token; perplexity needs at least 2`);
  const maxLength = opts.maxLength ?? (opts.modelPath ? modelMaxLength(opts.modelPath) : undefined);
  if (maxLength && ctx > maxLength.tokens) {
    progress.log(`--ctx ${ctx} is longer than ${opts.modelPath ?? 'the model'} can take (${maxLength.tokens} tokens, ${maxLength.source}); using ctx ${maxLength.tokens}`, 'warn');
    ctx = maxLength.tokens;
  }
  const windows = planWindows(stream.length, ctx, maxTokens);
  const used = windows[windows.length - 1].start + windows[windows.length - 1].length;

  const session = opts.session ?? (await openDecoder(opts.modelPath!, { engine: opts.engine }));
  try {
    if (opts.oovId !== undefined) {
      const mapped = mapOutOfVocabulary(stream, session.vocab, opts.oovId);
      if (mapped > 0) {
        progress.log(
          `${mapped} of ${stream.length} tokens of ${label} are outside the model's ${session.vocab}-entry vocabulary and were mapped to id ${opts.oovId}: this perplexity checks the pipeline, not the model's quality`,
          'warn',
        );
      }
    }
    checkIdsFit(stream.slice(0, used), session.vocab, `the token stream of ${label}`);
    let total = 0;
    let predictions = 0;
    progress.start('perplexity', windows.length);
    for (let w = 0; w < windows.length; w++) {
      cancel.throwIfCancelled();
      const win = windows[w];
      const ids = stream.slice(win.start, win.start + win.length);
      const logits = await session.logits(ids);
      const targets = Int32Array.from(ids.slice(1, 1 + win.predictions));
      const scored = await tokenNll(logits, targets);
      if (!Number.isFinite(scored.total)) {
        throw new W4A8Error(`the model produced non-finite logits in window ${w + 1} (tokens ${win.start}..${win.start + win.length - 1}); perplexity is undefined`);
      }
      total += scored.total;
      predictions += win.predictions;
      progress.update(w + 1, `ppl ${Math.exp(total / predictions).toFixed(4)} over ${predictions} tokens`);
      // session.run blocks the event loop: let Ctrl-C and progress output through between windows.
      await yieldToEventLoop();
    }
    progress.stop();
    const nll = total / predictions;
    // Finite losses can still overflow exp(): a model whose logits are wildly off.
    if (!Number.isFinite(Math.exp(nll))) {
      throw new W4A8Error(`the mean loss over ${predictions} tokens is ${nll.toFixed(1)} nats, so perplexity overflows (infinite); the model's logits are far off`);
    }
    return { ppl: Math.exp(nll), nll, tokens: predictions, windows: windows.length, ctx };
  } finally {
    if (!opts.session) await session.release();
  }
}
