// A decoder-only LLM behind ONNX Runtime (CPU EP), fed the way Optimum and ONNX Runtime GenAI
// exports expect: input_ids, attention_mask of ones, position_ids 0..seq-1, and every past
// key/value input EMPTY (past length 0), so one run scores a whole window from scratch.
// Evaluation fetches the logits; calibration fetches captured activations through run().
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { W4A8Error } from '../util/errors';
import type { Logits } from '../native/eval_ops';
import { numThreads } from '../native/kernels';
import { ENGINES, engineFor, openW4A8Session, ortEngineSession, W4A8_OP_DOMAIN, type Engine, type EngineSession } from './engine_session';
import { loadModel } from '../onnx/model';
import type { ModelProto } from 'onnx-buf';
import { readSessionConfig } from '../onnx/session_config';
import { firstRows, KvBuffers, presentsFromInPlaceAttention, SharedKvCache, type KvLayout } from './kv_buffers';

export interface OpenDecoderOptions {
  /** Threads ORT uses inside an operator (default: intraOpThreads(), the kernel pool's thread count). */
  intraOpNumThreads?: number;
  /** External data for a model given as bytes: [{path: location in the model, data}]. */
  externalData?: { path: string; data: Uint8Array }[];
  /** For a model given as bytes: the folder its external-data locations are relative to (ORT reads the side files itself). */
  externalDataFolder?: string;
  /** A name for error messages (default: the path, or "the in-memory model"). */
  label?: string;
  /** ORT session config entries (extra.session.*), e.g. { qdq_matmulnbits_accuracy_level: '0' }. */
  sessionConfig?: Record<string, string>;
  /** Which session runs the model (engine_session.ts); default: 'w4a8' for models with com.w4a8 nodes, else 'ort'. */
  engine?: Engine;
}

export interface DecoderSession {
  /** Width of the logits (the model's vocabulary as far as scoring is concerned). */
  readonly vocab: number;
  /** Element type of the logits output. */
  readonly logitsDtype: 'float32' | 'float16';
  /** Logits for every position of one sequence (batch 1), row-major [seq, vocab]. */
  logits(ids: number[]): Promise<Logits>;
  /** One forward pass over `ids` (batch 1) returning the named outputs (graph outputs, e.g. captured activations). */
  run(ids: number[], fetches: string[]): Promise<Record<string, ort.Tensor>>;
  /**
   * Present on models with a key/value cache (past inputs fed back from present outputs): one
   * forward pass over `ids` (batch 1) after the positions held in `past` (none: an empty cache).
   * Returns the logits of the last position only (every position of `ids` with `allLogits`), and
   * the cache extended by `ids`.
   */
  step?(ids: number[], past?: KvCache, opts?: StepOptions): Promise<{ logits: Logits; cache: KvCache }>;
  /**
   * Present with `step`: the cache of the first `length` positions of `cache` (draft tokens the
   * model did not confirm dropped). `cache` is consumed: stepping from it afterwards is an error,
   * since its later rows may be overwritten in place.
   */
  rewind?(cache: KvCache, length: number): KvCache;
  release(): Promise<void>;
}

export interface StepOptions {
  /** Return the logits of every position of the step, [ids.length, vocab] (default: the last only). */
  allLogits?: boolean;
}

/**
 * The key/value cache of one sequence: the present outputs of the last step, by past input name. On
 * fused models run by the w4a8 engine it is a view of buffers shared across steps (kv_buffers.ts):
 * `tensors` then copies the rows out; a cache may still be stepped from again (a branch) at any time.
 */
export interface KvCache {
  /** Positions held (the next token's position). */
  readonly length: number;
  readonly tensors: Readonly<Record<string, ort.Tensor>>;
}

/** present_N for past_N (GenAI), present.N.key for past_key_values.N.key (Optimum, ours). */
export function presentNameFor(pastName: string): string {
  return pastName.replace(/^past_key_values/, 'present').replace(/^past/, 'present');
}

type Meta = ort.InferenceSession.ValueMetadata;
type TensorMeta = ort.InferenceSession.TensorValueMetadata;

export type InputRole = 'input_ids' | 'attention_mask' | 'position_ids' | 'cache_position' | 'past' | 'use_cache_branch';

export interface InputPlan {
  name: string;
  role: InputRole;
  type: ort.Tensor.Type;
  /** For past inputs: the declared shape with batch -> 1 and the past length -> 0. */
  emptyDims?: number[];
}

const PAST_NAME = /past/i;
const BATCH_NAME = /batch/i;

export function roleOf(name: string): InputRole | undefined {
  if (name === 'input_ids') return 'input_ids';
  if (name === 'attention_mask') return 'attention_mask';
  if (name === 'position_ids') return 'position_ids';
  if (name === 'cache_position') return 'cache_position';
  if (name === 'use_cache_branch') return 'use_cache_branch';
  if (PAST_NAME.test(name)) return 'past';
  return undefined;
}

// Past key/values are [batch, heads, past, head_dim] (Optimum) or [2, batch, heads, past,
// head_dim] (GenAI past_N). Symbolic dims: a batch-named one is 1, the one left is the past
// length (0); heads and head_dim have to be numbers to build an empty tensor.
function emptyPastDims(label: string, meta: TensorMeta): number[] {
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d)));
  if (dims.length === 0) throw new W4A8Error(`${label}: past input "${meta.name}" has no declared shape; cannot feed it empty`);
  const symbolic = dims.map((d, i) => (typeof d === 'string' ? i : -1)).filter((i) => i >= 0);
  let batch = symbolic.filter((i) => BATCH_NAME.test(String(dims[i])));
  let rest = symbolic.filter((i) => !batch.includes(i));
  if (batch.length === 0 && rest.length === 2) {
    batch = [rest[0]];
    rest = [rest[1]];
  }
  if (rest.length !== 1) {
    throw new W4A8Error(
      `${label}: past input "${meta.name}" has shape [${dims.join(', ')}]; expected exactly one symbolic past-length dimension ` +
        '(heads and head_dim must be numbers in the model)',
    );
  }
  return dims.map((d, i) => (batch.includes(i) ? 1 : i === rest[0] ? 0 : (d as number)));
}

/** How to feed one decoder input (undefined: not a decoder input, e.g. a value a sub-graph reads). */
export function planDecoderInput(label: string, meta: Meta): InputPlan | undefined {
  if (!meta.isTensor) throw new W4A8Error(`${label}: input "${meta.name}" is not a tensor; not a decoder this tool can run`);
  const role = roleOf(meta.name);
  if (!role) return undefined;
  const plan: InputPlan = { name: meta.name, role, type: meta.type };
  if (role === 'input_ids' || role === 'attention_mask' || role === 'position_ids' || role === 'cache_position') {
    if (meta.type !== 'int64' && meta.type !== 'int32') {
      throw new W4A8Error(`${label}: input "${meta.name}" is ${meta.type}; expected int64 or int32`);
    }
  } else if (role === 'past') {
    if (meta.type !== 'float32' && meta.type !== 'float16') {
      throw new W4A8Error(`${label}: past input "${meta.name}" is ${meta.type}; expected float32 or float16`);
    }
    plan.emptyDims = emptyPastDims(label, meta);
  } else if (meta.type !== 'bool') {
    throw new W4A8Error(`${label}: input "${meta.name}" is ${meta.type}; expected bool`);
  }
  return plan;
}

function planInputs(label: string, inputs: readonly Meta[]): InputPlan[] {
  const plans: InputPlan[] = [];
  for (const meta of inputs) {
    const plan = planDecoderInput(label, meta);
    if (!plan) {
      throw new W4A8Error(
        `${label}: input "${meta.name}" is not one a decoder session can feed (input_ids, attention_mask, position_ids, cache_position, past key/values)`,
      );
    }
    plans.push(plan);
  }
  if (!plans.some((p) => p.role === 'input_ids')) {
    throw new W4A8Error(`${label} has no "input_ids" input (inputs: ${inputs.map((m) => m.name).join(', ') || 'none'}); not a decoder LLM`);
  }
  return plans;
}

/** The decoder inputs for one sequence of `ids` at positions start.., past inputs empty (start 0) unless given. */
export function decoderFeeds(plans: readonly InputPlan[], ids: number[], start = 0): Record<string, ort.Tensor> {
  const seq = ids.length;
  const feeds: Record<string, ort.Tensor> = {};
  const positions = Array.from({ length: seq }, (_, i) => start + i);
  for (const p of plans) {
    if (p.role === 'input_ids') feeds[p.name] = intTensor(p.type, ids, [1, seq]);
    else if (p.role === 'attention_mask') feeds[p.name] = intTensor(p.type, new Array<number>(start + seq).fill(1), [1, start + seq]);
    else if (p.role === 'position_ids') feeds[p.name] = intTensor(p.type, positions, [1, seq]);
    // Newer Optimum exports: the same positions without a batch dimension.
    else if (p.role === 'cache_position') feeds[p.name] = intTensor(p.type, positions, [seq]);
    else if (p.role === 'use_cache_branch') feeds[p.name] = new ort.Tensor('bool', Uint8Array.from([start > 0 ? 1 : 0]), [1]);
    else if (p.role === 'past') feeds[p.name] = emptyTensor(p.type, p.emptyDims!);
  }
  return feeds;
}

function findLogits(label: string, outputs: readonly Meta[]): TensorMeta {
  const candidates = outputs.filter((m): m is TensorMeta => m.isTensor && /logits/i.test(m.name));
  const found = candidates.find((m) => m.name === 'logits') ?? candidates[0];
  if (!found) {
    throw new W4A8Error(`${label} has no "logits" output (outputs: ${outputs.map((m) => m.name).join(', ') || 'none'}); not a decoder LLM`);
  }
  if (found.type !== 'float32' && found.type !== 'float16') {
    throw new W4A8Error(`${label}: output "${found.name}" is ${found.type}; expected float32 or float16 logits`);
  }
  return found;
}

function intTensor(type: ort.Tensor.Type, values: number[], dims: number[]): ort.Tensor {
  // Token ids and positions: at most one context window of small integers.
  if (type === 'int64') return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
  return new ort.Tensor('int32', Int32Array.from(values), dims);
}

function emptyTensor(type: ort.Tensor.Type, dims: number[]): ort.Tensor {
  return type === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), dims) : new ort.Tensor('float32', new Float32Array(0), dims);
}

export function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].trim();
}

class OrtDecoder implements DecoderSession {
  vocab = 0;
  readonly logitsDtype: 'float32' | 'float16';
  private readonly pastFeeds: Record<string, ort.Tensor> = {};

  constructor(
    private readonly session: EngineSession,
    private readonly label: string,
    private readonly inputs: InputPlan[],
    private readonly logitsName: string,
    logitsMeta: TensorMeta,
    /** present output name by past input name, when every past input has one. */
    private readonly presentByPast?: Map<string, string>,
    /** Keep the cache in one buffer per past input across steps (kv_buffers.ts): models whose presents come from CachedAttention or GroupQueryAttention. */
    sharedKv = false,
  ) {
    this.logitsDtype = logitsMeta.type as 'float32' | 'float16';
    if (presentByPast) {
      this.step = async (ids, past, opts) => {
        if (past !== undefined && this.rewound.has(past)) throw new TypeError('This KvCache was rewound; step from the cache rewind() returned');
        const all = opts?.allLogits === true;
        return this.kvLayouts ? this.sharedStep(ids, past, all) : this.cachedStep(ids, past, all);
      };
      this.rewind = (cache, length) => this.rewindCache(cache, length);
    }
    if (presentByPast && sharedKv && inputs.every((p) => p.role !== 'past' || (p.type === 'float32' && p.emptyDims!.filter((d) => d === 0).length === 1))) {
      this.kvLayouts = new Map<string, KvLayout>();
      for (const p of inputs) {
        if (p.role === 'past') this.kvLayouts.set(p.name, { present: presentByPast.get(p.name)!, emptyDims: p.emptyDims!, lengthAxis: p.emptyDims!.indexOf(0) });
      }
    }
    const last = logitsMeta.shape[logitsMeta.shape.length - 1];
    if (typeof last === 'number' && last > 0) this.vocab = last;
    // Empty past tensors never change: build them once.
    for (const p of inputs) {
      if (p.role === 'past') this.pastFeeds[p.name] = emptyTensor(p.type, p.emptyDims!);
      if (p.role === 'use_cache_branch') this.pastFeeds[p.name] = new ort.Tensor('bool', Uint8Array.from([0]), [1]);
    }
  }

  readonly step?: (ids: number[], past?: KvCache, opts?: StepOptions) => Promise<{ logits: Logits; cache: KvCache }>;
  readonly rewind?: (cache: KvCache, length: number) => KvCache;
  private readonly kvLayouts?: Map<string, KvLayout>;
  /** Caches given to rewind(): their buffers' later rows are no longer theirs. */
  private readonly rewound = new WeakSet<KvCache>();

  private rewindCache(cache: KvCache, length: number): KvCache {
    if (typeof cache !== 'object' || cache === null || !Number.isInteger(cache.length)) {
      throw new TypeError('Expected a KvCache returned by an earlier step');
    }
    if (!Number.isInteger(length) || length < 1 || length > cache.length) {
      throw new RangeError(`Expected a length in [1, ${cache.length}] but received ${length}`);
    }
    if (this.rewound.has(cache)) throw new TypeError('This KvCache was rewound already');
    if (length === cache.length) return cache;
    this.rewound.add(cache);
    if (cache instanceof SharedKvCache && cache.buffers.owner === this) {
      // The latest cache of its buffers: the next step writes its rows from `length` on, in place.
      if (cache.buffers.filled === cache.length && !cache.buffers.busy) cache.buffers.filled = length;
      return new SharedKvCache(length, cache.buffers);
    }
    const tensors: Record<string, ort.Tensor> = {};
    for (const p of this.inputs) {
      if (p.role !== 'past') continue;
      const t = cache.tensors[p.name];
      if (!t) throw new TypeError(`Expected the cache to hold past "${p.name}"`);
      tensors[p.name] = firstRows(t, p.emptyDims!.indexOf(0), length);
    }
    return { length, tensors };
  }

  /** The buffers a step from `past` writes into: past's own when it is their latest cache, else new ones. */
  private buffersFor(past: KvCache | undefined, rows: number): KvBuffers {
    const start = past?.length ?? 0;
    const own = past instanceof SharedKvCache && past.buffers.owner === this ? past.buffers : undefined;
    if (own && !own.busy && own.filled === start && rows <= own.capacity) return own;
    const fresh = new KvBuffers(this, this.kvLayouts!, KvBuffers.capacityFor(rows, own?.capacity));
    if (start > 0) {
      // Rows of our own buffers copy directly; any other cache (another decoder's, ordinary tensors) is checked.
      if (own) fresh.copyRows(own, start);
      else fresh.copyTensors(past!.tensors, start);
    }
    return fresh;
  }

  private async sharedStep(ids: number[], past: KvCache | undefined, allLogits: boolean): Promise<{ logits: Logits; cache: KvCache }> {
    if (past !== undefined && (typeof past !== 'object' || past === null || !Number.isInteger(past.length) || past.length < 0)) {
      throw new TypeError('Expected past to be a KvCache returned by an earlier step');
    }
    if (!Array.isArray(ids) || ids.length === 0) throw new RangeError('Expected a non-empty array of token ids');
    const start = past?.length ?? 0;
    const buffers = this.buffersFor(past, start + ids.length);
    const tensors: Record<string, ort.Tensor> = {};
    const into: Record<string, ort.Tensor> = {};
    for (const [name, l] of this.kvLayouts!) {
      const t = new ort.Tensor('float32', buffers.arrays.get(name)!, buffers.dims(name));
      tensors[name] = t;
      into[l.present] = t;
    }
    buffers.busy = true;
    let out: Record<string, ort.Tensor>;
    try {
      out = await this.run(ids, [this.logitsName], { start, tensors }, allLogits ? undefined : [this.logitsName], into);
    } finally {
      buffers.busy = false;
    }
    buffers.filled = start + ids.length;
    return { logits: this.stepLogits(out[this.logitsName], ids.length, allLogits), cache: new SharedKvCache(start + ids.length, buffers) };
  }

  private async cachedStep(ids: number[], past: KvCache | undefined, allLogits: boolean): Promise<{ logits: Logits; cache: KvCache }> {
    if (past !== undefined && (typeof past !== 'object' || !Number.isInteger(past.length) || typeof past.tensors !== 'object')) {
      throw new TypeError('Expected past to be a KvCache returned by an earlier step');
    }
    const start = past?.length ?? 0;
    const fetches = [this.logitsName, ...this.presentByPast!.values()];
    const out = await this.run(ids, fetches, past && start > 0 ? { start, tensors: past.tensors } : undefined, allLogits ? undefined : [this.logitsName]);
    const tensors: Record<string, ort.Tensor> = {};
    for (const [pastName, presentName] of this.presentByPast!) tensors[pastName] = out[presentName];
    return { logits: this.stepLogits(out[this.logitsName], ids.length, allLogits), cache: { length: start + ids.length, tensors } };
  }

  private stepLogits(t: ort.Tensor, seq: number, all: boolean): Logits {
    if (!all) return this.lastLogits(t, seq);
    const l = this.logitsOf(t, seq);
    // A copy: the engine may reuse its output memory on the next run.
    return { ...l, data: l.data.slice() };
  }

  /** The last position's logits of a step over `seq` tokens. */
  private lastLogits(t: ort.Tensor, seq: number): Logits {
    const vocab = t.dims[t.dims.length - 1];
    // The engine returns every row (onnxruntime-node) or only the last one (the w4a8 engine).
    const rows = t.dims.length >= 2 ? t.dims[t.dims.length - 2] : 0;
    if (!((rows === seq || rows === 1) && t.size === rows * vocab)) {
      throw new W4A8Error(`${this.label}: logits have shape [${t.dims.join(', ')}] for ${seq} tokens; expected [1, ${seq}, vocab]`);
    }
    if (this.vocab === 0) this.vocab = vocab;
    // Only the last row leaves: a prefill of n tokens keeps 1/n of its logits.
    const from = (rows - 1) * vocab;
    return t.type === 'float16'
      ? { data: (t.data as unknown as Uint16Array).slice(from, from + vocab), dtype: 'float16', seq: 1, vocab }
      : { data: (t.data as Float32Array).slice(from, from + vocab), dtype: 'float32', seq: 1, vocab };
  }

  async run(
    ids: number[], fetches: string[], past?: { start: number; tensors: Readonly<Record<string, ort.Tensor>> }, lastRowOf?: string[],
    into?: Record<string, ort.Tensor>,
  ): Promise<Record<string, ort.Tensor>> {
    if (!Array.isArray(ids) || ids.length === 0) throw new RangeError('Expected a non-empty array of token ids');
    if (!Array.isArray(fetches) || fetches.length === 0 || fetches.some((f) => typeof f !== 'string')) {
      throw new TypeError('Expected fetches to be a non-empty array of output names');
    }
    const seq = ids.length;
    const start = past?.start ?? 0;
    if (this.vocab > 0) {
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocab);
      if (bad !== undefined) {
        throw new W4A8Error(`token id ${bad} is outside the model's vocabulary [0, ${this.vocab}); the tokenizer does not fit ${this.label} (pass its own --tokenizer)`);
      }
    }
    const feeds: Record<string, ort.Tensor> = { ...decoderFeeds(this.inputs, ids, start), ...this.pastFeeds, ...past?.tensors };
    if (start > 0) for (const p of this.inputs) if (p.role === 'use_cache_branch') feeds[p.name] = new ort.Tensor('bool', Uint8Array.from([1]), [1]);
    try {
      return await this.session.run(feeds, fetches, lastRowOf || into ? { lastRowOf, into } : undefined);
    } catch (err) {
      throw new W4A8Error(`ONNX Runtime failed running ${this.label} on ${seq} tokens: ${firstLine(err)}`);
    }
  }

  async logits(ids: number[]): Promise<Logits> {
    const seq = Array.isArray(ids) ? ids.length : 0;
    return this.logitsOf((await this.run(ids, [this.logitsName]))[this.logitsName], seq);
  }

  /** Every row of a logits output over `seq` tokens (fp16 as its bits). */
  private logitsOf(t: ort.Tensor, seq: number): Logits {
    const dims = t.dims;
    const vocab = dims[dims.length - 1];
    const rows = t.size / vocab;
    if (dims.length < 2 || rows !== seq) {
      throw new W4A8Error(`${this.label}: logits have shape [${dims.join(', ')}] for ${seq} tokens; expected [1, ${seq}, vocab]`);
    }
    if (this.vocab === 0) this.vocab = vocab;
    if (t.type === 'float16') {
      const raw = t.data as unknown as ArrayBufferView;
      const bits = raw instanceof Uint16Array ? raw : new Uint16Array(raw.buffer, raw.byteOffset, t.size);
      return { data: bits, dtype: 'float16', seq, vocab };
    }
    return { data: t.data as Float32Array, dtype: 'float32', seq, vocab };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * ORT's intra-op thread count for our sessions: the one asked for, else as many as the kernel pool
 * has (every hardware thread, or `--threads`). ONNX Runtime's own default ran one thread on a 2-vCPU
 * AMD EPYC VM, which made `generate` decode a tinyllama at 0.6x the speed of two threads
 * (docs/ARCHITECTURE.md, "ONNX Runtime sessions, threads and weight memory").
 */
export function intraOpThreads(requested?: number): number {
  return requested ?? numThreads();
}

/** Fail early, before any slow work, when a model path names nothing or a folder. */
export function checkModelFile(modelPath: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(modelPath);
  } catch {
    throw new W4A8Error(`model file not found: ${modelPath}`);
  }
  if (stat.isDirectory()) {
    throw new W4A8Error(`${modelPath} is a directory; give the .onnx file (for example ${path.join(modelPath, 'model.onnx')})`);
  }
}

/** Open a decoder ONNX model (a path, external data found beside it; or serialized bytes). */
export async function openDecoder(model: string | Uint8Array, opts: OpenDecoderOptions = {}): Promise<DecoderSession> {
  // ORT's default logger prints graph warnings (per node, per load) on stderr, which would bury
  // our one-line errors and progress; keep them for W4A8_DEBUG=1.
  // Its error lines too: they would come before (and in --json mode, between) our own lines, and
  // every ORT error reaches us as an exception that becomes our one-line error.
  if (process.env.W4A8_DEBUG !== '1') ort.env.logLevel = 'fatal';
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    logSeverityLevel: process.env.W4A8_DEBUG === '1' ? 2 : 4,
  };
  options.intraOpNumThreads = intraOpThreads(opts.intraOpNumThreads);
  if (opts.sessionConfig) options.extra = { session: { ...opts.sessionConfig } };
  let session: EngineSession;
  let label: string;
  let engineOf: Engine = 'ort';
  let proto: ModelProto | undefined;
  if (opts.engine !== undefined && !(ENGINES as readonly string[]).includes(opts.engine)) {
    throw new TypeError(`Expected engine to be one of ${ENGINES.join(', ')} but received ${JSON.stringify(opts.engine)}`);
  }
  if (typeof model === 'string') {
    label = opts.label ?? model;
    checkModelFile(model);
    // Our parse first: graph faults get one clear line, and the session options the model
    // carries (metadata_props, e.g. a QDQ A16 export's accuracy level 0) are applied.
    proto = loadModel(model).proto;
    const carried = readSessionConfig(proto, model);
    if (Object.keys(carried).length > 0) options.extra = { session: { ...carried, ...opts.sessionConfig } };
    const engine = opts.engine ?? engineFor(proto);
    engineOf = engine;
    try {
      session = engine === 'w4a8'
        ? await openW4A8Session(model, { intraOpNumThreads: options.intraOpNumThreads, sessionConfig: { ...carried, ...opts.sessionConfig } })
        : ortEngineSession(await ort.InferenceSession.create(model, options));
    } catch (err) {
      if (engine === 'ort' && engineFor(proto) === 'w4a8') {
        throw new W4A8Error(`${model} holds ${W4A8_OP_DOMAIN} nodes, which onnxruntime-node cannot run; use the w4a8 engine (--engine w4a8, the default for such models)`);
      }
      throw new W4A8Error(`cannot load ${model} as an ONNX model${engine === 'w4a8' ? ' (w4a8 engine)' : ''}: ${firstLine(err)}`);
    }
  } else if (model instanceof Uint8Array) {
    label = opts.label ?? 'the in-memory model';
    if (opts.engine === 'w4a8') throw new W4A8Error('the w4a8 engine opens models from a path; save the model first');
    if (opts.externalData) options.externalData = opts.externalData.map((e) => ({ path: e.path, data: e.data }));
    if (opts.externalDataFolder !== undefined) {
      const session = { ...(options.extra as { session?: Record<string, string> } | undefined)?.session, model_external_initializers_file_folder_path: opts.externalDataFolder };
      options.extra = { ...options.extra, session };
    }
    try {
      session = ortEngineSession(await ort.InferenceSession.create(model, options));
    } catch (err) {
      throw new W4A8Error(`cannot load ${label} as an ONNX model: ${firstLine(err)}`);
    }
  } else {
    throw new TypeError('Expected a model path (string) or serialized model bytes (Uint8Array)');
  }
  try {
    const plans = planInputs(label, session.inputMetadata);
    const logitsMeta = findLogits(label, session.outputMetadata);
    const outputNames = new Set(session.outputMetadata.map((m) => m.name));
    const pastNames = plans.filter((p) => p.role === 'past').map((p) => p.name);
    const cached = pastNames.length > 0 && pastNames.every((n) => outputNames.has(presentNameFor(n)));
    const presentByPast = cached ? new Map(pastNames.map((n) => [n, presentNameFor(n)])) : undefined;
    // Both engines bind outputs to given memory: an in-place attention's cache stays in one buffer.
    const sharedKv = presentByPast !== undefined && proto !== undefined && presentsFromInPlaceAttention(proto, presentByPast.values());
    const decoder = new OrtDecoder(session, label, plans, logitsMeta.name, logitsMeta, presentByPast, sharedKv);
    // A symbolic logits width is learnt from one tiny run, before any id is checked against it.
    if (decoder.vocab === 0) await decoder.logits([0]);
    return decoder;
  } catch (err) {
    await session.release();
    throw err;
  }
}
