// Runs a decoder through ONNX Runtime with chosen fetches and session options. lib/eval's
// DecoderSession fetches the logits only and takes no session options; calibration needs the
// captured activations, and the QDQ export needs `qdq_matmulnbits_accuracy_level`. The feeds
// follow the same convention as lib/eval/session.ts: input_ids, attention_mask of ones,
// position_ids 0..seq-1, every past key/value empty (past length 0).
import * as ort from 'onnxruntime-node';
import { W4A8Error } from '../errors';
import type { DecoderSession } from '../eval/session';
import type { Logits } from '../native/eval_ops';

export interface RunnerOptions {
  externalData?: { path: string; data: Uint8Array }[];
  label?: string;
  /** ORT session config entries (extra.session.*), e.g. { qdq_matmulnbits_accuracy_level: '0' }. */
  sessionConfig?: Record<string, string>;
  intraOpNumThreads?: number;
}

type TensorMeta = ort.InferenceSession.TensorValueMetadata;

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
}

function intTensor(type: ort.Tensor.Type, values: number[], dims: number[]): ort.Tensor {
  if (type === 'int64') return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
  return new ort.Tensor('int32', Int32Array.from(values), dims);
}

/** Past inputs [.., batch, heads, past, head_dim]: batch-named or first symbolic dim -> 1, the other symbolic dim -> 0. */
function emptyPast(label: string, meta: TensorMeta): ort.Tensor {
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d)));
  const symbolic = dims.map((d, i) => (typeof d === 'string' ? i : -1)).filter((i) => i >= 0);
  let batch = symbolic.filter((i) => /batch/i.test(String(dims[i])));
  let rest = symbolic.filter((i) => !batch.includes(i));
  if (batch.length === 0 && rest.length === 2) {
    batch = [rest[0]];
    rest = [rest[1]];
  }
  if (rest.length !== 1) throw new W4A8Error(`${label}: past input "${meta.name}" has shape [${dims.join(', ')}]; cannot feed it empty`);
  const shape = dims.map((d, i) => (batch.includes(i) ? 1 : i === rest[0] ? 0 : (d as number)));
  return meta.type === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), shape) : new ort.Tensor('float32', new Float32Array(0), shape);
}

export class DecoderRunner {
  private readonly fixedFeeds: Record<string, ort.Tensor> = {};
  private readonly tokenInputs: { name: string; type: ort.Tensor.Type; role: 'ids' | 'mask' | 'pos' }[] = [];
  /** Logits width when the model declares it (ids at or past it would index outside the embedding). */
  private readonly vocab: number;

  private constructor(
    readonly session: ort.InferenceSession,
    readonly label: string,
  ) {
    for (const meta of session.inputMetadata) {
      if (!meta.isTensor) throw new W4A8Error(`${label}: input "${meta.name}" is not a tensor`);
      if (meta.name === 'input_ids') this.tokenInputs.push({ name: meta.name, type: meta.type, role: 'ids' });
      else if (meta.name === 'attention_mask') this.tokenInputs.push({ name: meta.name, type: meta.type, role: 'mask' });
      else if (meta.name === 'position_ids') this.tokenInputs.push({ name: meta.name, type: meta.type, role: 'pos' });
      else if (meta.name === 'use_cache_branch') this.fixedFeeds[meta.name] = new ort.Tensor('bool', Uint8Array.from([0]), [1]);
      else if (/past/i.test(meta.name)) this.fixedFeeds[meta.name] = emptyPast(label, meta);
      else throw new W4A8Error(`${label}: input "${meta.name}" is not one a decoder runner can feed`);
    }
    if (!this.tokenInputs.some((t) => t.role === 'ids')) throw new W4A8Error(`${label} has no "input_ids" input; not a decoder LLM`);
    const logits = session.outputMetadata.find((m) => m.name === 'logits');
    const last = logits && logits.isTensor ? logits.shape[logits.shape.length - 1] : undefined;
    this.vocab = typeof last === 'number' && last > 0 ? last : 0;
  }

  static async open(model: string | Uint8Array, opts: RunnerOptions = {}): Promise<DecoderRunner> {
    const label = opts.label ?? (typeof model === 'string' ? model : 'the in-memory model');
    const options: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], logSeverityLevel: 3 };
    if (opts.intraOpNumThreads !== undefined) options.intraOpNumThreads = opts.intraOpNumThreads;
    if (opts.sessionConfig) options.extra = { session: { ...opts.sessionConfig } };
    if (opts.externalData && typeof model !== 'string') options.externalData = opts.externalData.map((e) => ({ path: e.path, data: e.data }));
    let session: ort.InferenceSession;
    try {
      session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
    } catch (err) {
      throw new W4A8Error(`cannot load ${label} in ONNX Runtime: ${firstLine(err)}`);
    }
    try {
      return new DecoderRunner(session, label);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /** One forward pass over `ids` (batch 1), returning the requested outputs. */
  async run(ids: number[], fetches: string[]): Promise<Record<string, ort.Tensor>> {
    const seq = ids.length;
    if (this.vocab > 0) {
      const bad = ids.find((id) => id >= this.vocab);
      if (bad !== undefined) throw new W4A8Error(`token id ${bad} is outside the vocabulary of ${this.label} [0, ${this.vocab}); the tokenizer does not fit this model (pass its own --tokenizer)`);
    }
    const feeds: Record<string, ort.Tensor> = { ...this.fixedFeeds };
    for (const t of this.tokenInputs) {
      if (t.role === 'ids') feeds[t.name] = intTensor(t.type, ids, [1, seq]);
      else if (t.role === 'mask') feeds[t.name] = intTensor(t.type, new Array<number>(seq).fill(1), [1, seq]);
      else feeds[t.name] = intTensor(t.type, Array.from({ length: seq }, (_, i) => i), [1, seq]);
    }
    try {
      return await this.session.run(feeds, fetches);
    } catch (err) {
      throw new W4A8Error(`ONNX Runtime failed running ${this.label} on ${seq} tokens: ${firstLine(err)}`);
    }
  }

  /** This runner as a lib/eval DecoderSession (logits only), for evaluatePerplexity({session}). */
  async asDecoderSession(): Promise<DecoderSession> {
    const logitsMeta = this.session.outputMetadata.find((m) => m.name === 'logits') ?? this.session.outputMetadata.find((m) => /logits/i.test(m.name));
    if (!logitsMeta || !logitsMeta.isTensor) throw new W4A8Error(`${this.label} has no "logits" output`);
    const name = logitsMeta.name;
    const dtype = logitsMeta.type === 'float16' ? 'float16' : 'float32';
    const runner = this;
    let vocab = 0;
    const logits = async (ids: number[]): Promise<Logits> => {
      const t = (await runner.run(ids, [name]))[name];
      vocab = t.dims[t.dims.length - 1];
      const seq = t.size / vocab;
      if (t.type === 'float16') {
        const raw = t.data as unknown as ArrayBufferView;
        return { data: raw instanceof Uint16Array ? raw : new Uint16Array(raw.buffer, raw.byteOffset, t.size), dtype: 'float16', seq, vocab };
      }
      return { data: t.data as Float32Array, dtype: 'float32', seq, vocab };
    };
    await logits([0]);
    return {
      get vocab() {
        return vocab;
      },
      logitsDtype: dtype,
      logits,
      release: () => runner.release(),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
