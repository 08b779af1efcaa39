// `w4a8 bench e2e`: whole-model prefill and decode speed, and peak memory, of one model's variants
// (the float model and its quantizations, all from the same quantized arrays; lib/pipeline/e2e_models.ts
// writes them), in one process.
//
// Method (docs/BENCHMARKS.md repeats it next to the numbers):
// - Memory first, one variant at a time, each in a fresh child process (runMemoryJob): it opens the
//   variant's session and runs one prefill of the longest prompt plus a few decode steps
//   (MEMORY_DECODE_STEPS: the cache grows by a few kB a step, the time would not); its peak RSS is
//   that process's VmHWM, Node included (`rssBeforeMb`: its RSS before the load). One
//   process for all variants would report whatever the allocator kept from the variants before.
// - Then every session is opened, warmed once (prefill plus one step), and timed in interleaved
//   rounds (the order rotates each round) per prompt length: prefill = one forward over the prompt
//   with an empty KV cache (until the last-row logits are in JS); decode = `newTokens` greedy steps
//   of one token each, feeding the cache back, including the argmax. Medians over rounds.
// - Prompts are seeded random token ids after BOS (1): speed does not depend on the text, and a
//   random-weight model has no text to prefer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argmaxRow } from '../native/eval_ops';
import { cpuDefaultIsa, fillRandom, numThreads, setNumThreads } from '../native/kernels';
import { openDecoder, type DecoderSession, type KvCache } from '../ort/session';
import { onnxruntimeLibraryPath, type Engine } from '../ort/engine_session';
import { type CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { type Progress, silentProgress } from '../util/progress';
import { W4A8Error } from '../util/errors';
import { collectGarbage } from '../util/gc';
import { runJsonChild } from '../util/json_child';
import { cpuModel } from './cpu';
import { elapsedMs, summarize, type Timing } from './stats';

/** The variants, in report order; the first is the reference of the greedy-token comparison. */
// w4a8-int8 and w4a8-a16 are `quantize --format w4a8` as users get it (the fused decoder:
// lib/export/fuse_decoder.ts); w4a8-int8-unfused is the same W4A8MatMuls in the standard-op graph
// of ort-nbits-acc4, node for node: the like-for-like comparison of the kernels alone. The -genai
// variants hold the same weights in the graph ONNX Runtime GenAI's model builder writes (fused
// contrib ops: GroupQueryAttention, SkipSimplifiedLayerNormalization; lib/import/llama2c_graph_genai.ts),
// ONNX Runtime's strongest graph for the model: MatMulNBits there, and our W4A8MatMul in its place.
// ort-nbits-acc0 is MatMulNBits with float activations (accuracy_level 0): the peer of w4a8-a16.
export const E2E_VARIANTS = ['ort-fp32', 'ort-nbits-acc4', 'ort-nbits-acc4-genai', 'ort-nbits-acc0', 'w4a8-int8', 'w4a8-int8-unfused', 'w4a8-int8-genai', 'w4a8-a16'] as const;
export type E2eVariant = (typeof E2E_VARIANTS)[number];
/** The baseline of the targets. */
export const E2E_BASELINE: E2eVariant = 'ort-nbits-acc4';

export interface E2eVariantModel {
  variant: E2eVariant;
  modelPath: string;
  engine: Engine;
  /** Bytes of the linear layers' weights (codes, scales, zero points; fp32 for the float model): what one decode step reads. */
  linearWeightBytes?: number;
}

export interface E2eBenchOptions {
  models: E2eVariantModel[];
  /** Prompt lengths in tokens (BOS included); each is timed in its own rounds. */
  promptTokens: number[];
  /** Decode steps after the prefill. */
  newTokens: number;
  rounds: number;
  /** Threads of our kernel pool and ORT's intra-op pool. */
  threads: number;
  /** Seed of the prompt ids (printed in the report). */
  seed: number;
  /** The model's vocabulary (prompt ids are drawn below it); default: learnt from the session. */
  vocab?: number;
  /** ONNX Runtime's intra-op threads spin between parallel loops, in every variant (default true: on, as ONNX Runtime and the w4a8 engine run by default). */
  ortSpinning?: boolean;
  /**
   * Which session runs the ONNX Runtime variants (ort-*): 'w4a8' (default), the addon's session of
   * the same libonnxruntime.so.1, the call path of our variants (feeds, outputs, the KV cache kept in
   * one buffer where the graph allows); 'ort', onnxruntime-node.
   */
  baselineEngine?: Engine;
  /** The model's maximum length, when known: prompt + newTokens must fit. */
  maxLength?: number;
  progress?: Progress;
  cancel?: CancelToken;
}

export interface E2eResult {
  variant: E2eVariant;
  promptTokens: number;
  newTokens: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  /** Peak RSS of the memory phase (null where /proc/self/clear_refs does not reset VmHWM). */
  peakRssMb: number | null;
  /** VmRSS when the variant's memory phase began. */
  rssBeforeMb: number | null;
  /** Session creation time in the memory phase. */
  loadMs: number;
  prefill: Timing;
  /** Time of one decode step. */
  decodeStep: Timing;
  /** Greedy tokens: the one chosen after the prefill, then one per decode step. */
  tokens: number[];
  /** How many leading tokens equal ort-fp32's (tokens.length when all do). */
  sameAsFp32: number;
  /** linearWeightBytes x decode tokens/s: the memory traffic decoding needs from the linear layers alone (null when unknown). */
  decodeWeightGBps: number | null;
}

export interface E2eBenchReport {
  cpu: string;
  isa: string;
  threads: number;
  rounds: number;
  seed: number;
  /** 1-minute load average before and after. */
  loadAvg: [number, number];
  /** How peakRssMb was measured. */
  rssMethod: string;
  /** Whether ORT's intra-op threads spin (every variant). */
  ortSpinning: boolean;
  /** The session that ran the ONNX Runtime variants (ort-*). */
  baselineEngine: Engine;
  /** The libonnxruntime.so.1 the addon's sessions opened (W4A8_ORT_LIBRARY when set): every variant's but onnxruntime-node's. */
  ortLibrary: string;
  results: E2eResult[];
}

/** Decode steps of the memory phase. */
export const MEMORY_DECODE_STEPS = 8;

function statusKb(field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

interface MemoryJob {
  model: E2eVariantModel;
  threads: number;
  ortSpinning: boolean;
  promptTokens: number;
  steps: number;
  seed: number;
  vocab?: number;
}
interface MemoryResult {
  peakKb: number;
  beforeKb: number | null;
  loadMs: number;
  vocab: number;
}

/**
 * The memory phase of one variant, in the process that runs it (a child of the bench, so that its peak
 * is its own and not the largest of the variants before it): open, one prefill of the longest prompt,
 * a few decode steps; the peak is the process's VmHWM (Node included).
 */
export async function runMemoryJob(job: MemoryJob): Promise<MemoryResult> {
  setNumThreads(job.threads);
  const beforeKb = statusKb('VmRSS') ?? null;
  const t0 = process.hrtime.bigint();
  const s = await open(job.model, job.threads, job.ortSpinning);
  const loadMs = elapsedMs(t0);
  try {
    const vocab = job.vocab ?? s.vocab;
    await generate(s, randomPrompt(job.promptTokens, vocab, job.seed), job.steps, neverCancelled);
    // VmHWM, not getrusage's maxrss: Linux carries maxrss over fork and exec, so a child would report at
    // least the bench process's own RSS at the time it was spawned.
    const peakKb = statusKb('VmHWM');
    if (peakKb === undefined) throw new W4A8Error('cannot read VmHWM from /proc/self/status: peak RSS is measured on Linux only');
    return { peakKb, beforeKb, loadMs, vocab };
  } finally {
    await s.release();
  }
}

function memoryInChild(job: MemoryJob, cancel: CancelToken): Promise<MemoryResult> {
  // The built module (also when this one runs from the TypeScript sources, as in the tests).
  const built = path.resolve(__dirname, '..', '..', 'dist', 'bench', 'e2e.js');
  const script = `require(${JSON.stringify(built)}).runMemoryJob(${JSON.stringify(job)}).then(
    (r) => process.stdout.write(JSON.stringify(r)), (e) => { process.stderr.write(String(e && e.message || e)); process.exit(1); })`;
  return runJsonChild<MemoryResult>(script, `${job.model.variant}: the memory run`, cancel);
}

/** BOS then seeded random ids in [3, vocab): the same prompt for every variant. */
export function randomPrompt(length: number, vocab: number, seed: number): number[] {
  const draws = new Float32Array(Math.max(0, length - 1));
  fillRandom(draws, seed, 0, 1);
  return [1, ...Array.from(draws, (u) => Math.min(vocab - 1, 3 + Math.floor(u * (vocab - 3))))];
}

interface RunTimes {
  prefillMs: number;
  decodeMs: number;
  tokens: number[];
}

/** One generation: prefill, then `newTokens` greedy steps. */
async function generate(session: DecoderSession, prompt: number[], newTokens: number, cancel: CancelToken): Promise<RunTimes> {
  const t0 = process.hrtime.bigint();
  let r = await session.step!(prompt);
  let next = argmaxRow(r.logits, r.logits.seq - 1);
  const prefillMs = elapsedMs(t0);
  const tokens = [next];
  let cache: KvCache = r.cache;
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < newTokens; ++i) {
    cancel.throwIfCancelled();
    r = await session.step!([next], cache);
    cache = r.cache;
    next = argmaxRow(r.logits, r.logits.seq - 1);
    tokens.push(next);
  }
  return { prefillMs, decodeMs: elapsedMs(t1), tokens };
}

// ONNX Runtime's intra-op spinning, the same for every variant (like for like): on by default, as ONNX Runtime
// and the w4a8 engine set it (decode loops of both engines measured faster with it on 2026-12-07: a decode step
// is ~110 parallel loops, each waking the worker with a futex when it sleeps; docs/BENCHMARKS.md, "End to end");
// --ort-spinning off turns it off for both engines. (bench cpu keeps it off: its hundreds of open sessions'
// spinning workers would fight for the cores.) The two engines spell the key differently: onnxruntime-node
// prefixes "session." itself.
function spinningConfig(engine: E2eVariantModel['engine'], spinning: boolean): Record<string, string> {
  const v = spinning ? '1' : '0';
  return engine === 'ort' ? { 'intra_op.allow_spinning': v } : { 'session.intra_op.allow_spinning': v };
}

async function open(m: E2eVariantModel, threads: number, ortSpinning: boolean): Promise<DecoderSession> {
  const sessionConfig = spinningConfig(m.engine, ortSpinning);
  const session = await openDecoder(m.modelPath, { engine: m.engine, intraOpNumThreads: threads, label: `${m.variant} (${m.modelPath})`, sessionConfig });
  if (!session.step) {
    await session.release();
    throw new W4A8Error(`${m.modelPath} has no key/value cache (past/present inputs and outputs); bench e2e times cached decoding only`);
  }
  return session;
}

function checkOptions(o: E2eBenchOptions): void {
  if (!Array.isArray(o.models) || o.models.length === 0) throw new TypeError('Expected models to be a non-empty array of { variant, modelPath, engine }');
  for (const m of o.models) {
    if (!(E2E_VARIANTS as readonly string[]).includes(m.variant)) throw new RangeError(`Expected variant to be one of ${E2E_VARIANTS.join(', ')} but received ${JSON.stringify(m.variant)}`);
  }
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`Expected ${name} to be an integer >= ${min} but received ${v}`);
  };
  if (!Array.isArray(o.promptTokens) || o.promptTokens.length === 0) throw new TypeError('Expected promptTokens to be a non-empty array of token counts');
  for (const p of o.promptTokens) int('promptTokens', p, 1);
  int('newTokens', o.newTokens, 1);
  int('rounds', o.rounds, 1);
  int('threads', o.threads, 1);
  if (o.baselineEngine !== undefined && o.baselineEngine !== 'ort' && o.baselineEngine !== 'w4a8') {
    throw new RangeError(`Expected baselineEngine to be 'ort' or 'w4a8' but received ${JSON.stringify(o.baselineEngine)}`);
  }
  if (o.maxLength !== undefined) {
    const longest = Math.max(...o.promptTokens);
    if (longest + o.newTokens > o.maxLength) {
      throw new RangeError(
        `Expected prompt + new tokens to fit the model's maximum length ${o.maxLength} but received ${longest} + ${o.newTokens}; lower --prompt-tokens or --new-tokens`,
      );
    }
  }
}

export async function runE2eBench(o: E2eBenchOptions): Promise<E2eBenchReport> {
  checkOptions(o);
  const progress = o.progress ?? silentProgress;
  const cancel = o.cancel ?? neverCancelled;
  const loadBefore = os.loadavg()[0];
  const ortSpinning = o.ortSpinning ?? true;
  const previousThreads = numThreads();
  setNumThreads(o.threads);
  const baselineEngine = o.baselineEngine ?? 'w4a8';
  const models = E2E_VARIANTS.map((v) => o.models.find((m) => m.variant === v))
    .filter((m): m is E2eVariantModel => m !== undefined)
    .map((m) => (m.variant.startsWith('ort-') ? { ...m, engine: baselineEngine } : m));
  const longest = Math.max(...o.promptTokens);
  const sessions = new Map<E2eVariant, DecoderSession>();
  try {
    // Memory, one variant at a time, each in a process of its own, with the longest prompt.
    const memory = new Map<E2eVariant, { peakMb: number | null; beforeMb: number | null; loadMs: number }>();
    let vocab = o.vocab;
    progress.start('peak memory per variant', models.length);
    for (const [i, m] of models.entries()) {
      cancel.throwIfCancelled();
      const r = await memoryInChild({ model: m, threads: o.threads, ortSpinning, promptTokens: longest, steps: Math.min(o.newTokens, MEMORY_DECODE_STEPS), seed: o.seed, vocab }, cancel);
      vocab ??= r.vocab;
      memory.set(m.variant, { peakMb: r.peakKb / 1024, beforeMb: r.beforeKb === null ? null : r.beforeKb / 1024, loadMs: r.loadMs });
      progress.update(i + 1, m.variant);
      await yieldToEventLoop();
    }
    progress.stop();

    for (const m of models) {
      const s = await open(m, o.threads, ortSpinning);
      sessions.set(m.variant, s);
      await generate(s, randomPrompt(Math.min(8, longest), vocab!, o.seed + 1), 1, cancel); // warm
    }

    const results: E2eResult[] = [];
    for (const promptTokens of o.promptTokens) {
      const prompt = randomPrompt(promptTokens, vocab!, o.seed);
      const prefill = new Map<E2eVariant, number[]>(models.map((m) => [m.variant, []]));
      const decode = new Map<E2eVariant, number[]>(models.map((m) => [m.variant, []]));
      const tokens = new Map<E2eVariant, number[]>();
      progress.start(`timing prompt ${promptTokens} + ${o.newTokens} new tokens`, o.rounds * models.length);
      for (let r = 0; r < o.rounds; ++r) {
        for (let j = 0; j < models.length; ++j) {
          cancel.throwIfCancelled();
          const m = models[(j + r) % models.length];
          // A full collection first: each variant's own garbage (onnxruntime-node copies every present
          // tensor into JS each step) is collected in its own time, not in the next variant's.
          collectGarbage();
          const t = await generate(sessions.get(m.variant)!, prompt, o.newTokens, cancel);
          prefill.get(m.variant)!.push(t.prefillMs);
          decode.get(m.variant)!.push(t.decodeMs / o.newTokens);
          if (!tokens.has(m.variant)) tokens.set(m.variant, t.tokens);
          progress.update(r * models.length + j + 1, `${m.variant} prefill ${t.prefillMs.toFixed(0)} ms, decode ${(t.decodeMs / o.newTokens).toFixed(1)} ms/token`);
          await yieldToEventLoop();
        }
      }
      progress.stop();
      const reference = tokens.get('ort-fp32');
      for (const m of models) {
        const p = summarize(prefill.get(m.variant)!, o.rounds);
        const d = summarize(decode.get(m.variant)!, o.rounds * o.newTokens);
        const mine = tokens.get(m.variant)!;
        let same = 0;
        while (reference && same < mine.length && mine[same] === reference[same]) same++;
        const mem = memory.get(m.variant)!;
        results.push({
          variant: m.variant, promptTokens, newTokens: o.newTokens,
          prefillTokPerS: (promptTokens * 1000) / p.medianMs,
          decodeTokPerS: 1000 / d.medianMs,
          peakRssMb: mem.peakMb === null ? null : Math.round(mem.peakMb),
          rssBeforeMb: mem.beforeMb === null ? null : Math.round(mem.beforeMb),
          loadMs: Math.round(mem.loadMs),
          prefill: p, decodeStep: d, tokens: mine, sameAsFp32: reference ? same : 0,
          decodeWeightGBps: m.linearWeightBytes ? (m.linearWeightBytes * (1000 / d.medianMs)) / 1e9 : null,
        });
      }
    }
    return {
      cpu: cpuModel(), isa: cpuDefaultIsa(), threads: o.threads, rounds: o.rounds, seed: o.seed, ortSpinning, baselineEngine, ortLibrary: onnxruntimeLibraryPath(), loadAvg: [loadBefore, os.loadavg()[0]],
      rssMethod: `peak RSS (VmHWM) of a fresh process per variant that loads it and runs one prefill of ${longest} tokens + ${Math.min(o.newTokens, MEMORY_DECODE_STEPS)} decode steps; "RSS before" is that process's RSS before the load (Node and the addon)`,
      results,
    };
  } finally {
    for (const s of sessions.values()) await s.release();
    setNumThreads(previousThreads);
  }
}

