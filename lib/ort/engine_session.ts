// The one session interface of the ORT floor, served by two engines:
//   'ort'   onnxruntime-node's InferenceSession (standard and com.microsoft models);
//   'w4a8'  the addon's own ONNX Runtime session (the same libonnxruntime.so.1 that onnxruntime-node
//           ships, opened by the addon with dlopen) with the com.w4a8 custom-op domain registered, for
//           models holding W4A8MatMul nodes.
// Both expose onnxruntime-node's shapes (metadata, ort.Tensor feeds and outputs), so the decoder and
// calibration code above runs on either unchanged. Runs of the 'w4a8' engine go to the libuv pool.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelProto } from 'onnx-buf';
import {
  createOrtSession, ONNX_ELEMENT_TYPES, openOrtLibrary, releaseOrtSession, runOrtSession, type OrtFeed, type OrtSessionHandle,
  type OrtValueInfo,
} from '../native/ort_runtime';
import { W4A8Error } from '../util/errors';

export const ENGINES = ['ort', 'w4a8'] as const;
export type Engine = (typeof ENGINES)[number];
/** The custom-op domain of W4A8MatMul (native/include/w4a8/ort_op.h). */
export const W4A8_OP_DOMAIN = 'com.w4a8';

/** What eval, generation and calibration need from a session, whichever engine serves it. */
export interface EngineSession {
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  /**
   * One run. `opts.lastRowOf`: fetches the caller reads only the last row of (dimension -2); an
   * engine may then return just that row (dims [..., 1, n]) instead of the whole tensor.
   */
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], opts?: RunOptions): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export interface RunOptions {
  lastRowOf?: readonly string[];
  /**
   * Outputs written into these tensors' memory instead of returned (their dims must be the outputs'
   * shapes); a tensor may also be a feed (an attention op's cache kept in one buffer: kv_buffers.ts).
   */
  into?: Readonly<Record<string, ort.Tensor>>;
}

/**
 * onnxruntime-node's session as an EngineSession (it returns whole tensors: lastRowOf is not passed
 * on). `into` becomes onnxruntime-node's preallocated outputs, which wrap the given tensors' memory
 * as the feeds do (no copy), so a present output can be its past feed.
 */
export function ortEngineSession(session: ort.InferenceSession): EngineSession {
  return {
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    run: async (feeds, fetches, opts) => {
      if (!opts?.into || Object.keys(opts.into).length === 0) return session.run(feeds, [...fetches]) as Promise<Record<string, ort.Tensor>>;
      const outputs: Record<string, ort.Tensor | null> = {};
      for (const f of fetches) outputs[f] = null;
      Object.assign(outputs, opts.into);
      const all = (await session.run(feeds, outputs)) as Record<string, ort.Tensor>;
      return Object.fromEntries(fetches.map((f) => [f, all[f]]));
    },
    release: () => session.release(),
  };
}

/** 'w4a8' when the model imports the com.w4a8 domain (its opset imports), else 'ort'. */
export function engineFor(model: ModelProto): Engine {
  return model.opsetImport.some((o) => o.domain === W4A8_OP_DOMAIN) ? 'w4a8' : 'ort';
}

/**
 * The libonnxruntime.so.1 the w4a8 engine opens: W4A8_ORT_LIBRARY when set, else onnxruntime-node's.
 */
export function onnxruntimeLibraryPath(): string {
  if (process.env.W4A8_ORT_LIBRARY) return path.resolve(process.env.W4A8_ORT_LIBRARY);
  return onnxruntimeNodeLibraryPath();
}

/** The libonnxruntime.so.1 inside the installed onnxruntime-node (bin/napi-v*\/<platform>/<arch>/), resolved at run time. */
export function onnxruntimeNodeLibraryPath(): string {
  let pkg: string;
  try {
    pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  } catch {
    throw new W4A8Error('onnxruntime-node is not installed; run `npm ci` (the w4a8 engine opens its libonnxruntime.so.1)');
  }
  const file = process.platform === 'darwin' ? 'libonnxruntime.1.dylib' : 'libonnxruntime.so.1';
  const bin = path.join(pkg, 'bin');
  const napi = fs.existsSync(bin) ? fs.readdirSync(bin).filter((d) => d.startsWith('napi-v')).sort().reverse() : [];
  for (const d of napi) {
    const p = path.join(bin, d, process.platform, process.arch, file);
    if (fs.existsSync(p)) return p;
  }
  throw new W4A8Error(`onnxruntime-node at ${pkg} has no ${file} for ${process.platform}/${process.arch}; set W4A8_ORT_LIBRARY to one`);
}

const TYPE_BY_NUMBER = new Map<number, ort.Tensor.Type>(Object.entries(ONNX_ELEMENT_TYPES).map(([k, v]) => [v, k as ort.Tensor.Type]));

function metadata(v: OrtValueInfo): ort.InferenceSession.ValueMetadata {
  if (!v.isTensor) return { name: v.name, isTensor: false };
  const type = TYPE_BY_NUMBER.get(v.type);
  if (!type) return { name: v.name, isTensor: false };
  return { name: v.name, isTensor: true, type, shape: v.shape };
}

function tensorOf(type: ort.Tensor.Type, data: ArrayBuffer, dims: number[]): ort.Tensor {
  switch (type) {
    case 'float32': return new ort.Tensor('float32', new Float32Array(data), dims);
    case 'float16': return new ort.Tensor('float16', new Uint16Array(data), dims);
    case 'int64': return new ort.Tensor('int64', new BigInt64Array(data), dims);
    case 'int32': return new ort.Tensor('int32', new Int32Array(data), dims);
    case 'bool': return new ort.Tensor('bool', new Uint8Array(data), dims);
    case 'uint8': return new ort.Tensor('uint8', new Uint8Array(data), dims);
    case 'int8': return new ort.Tensor('int8', new Int8Array(data), dims);
    case 'float64': return new ort.Tensor('float64', new Float64Array(data), dims);
    default: throw new W4A8Error(`the w4a8 engine cannot return a ${type} tensor`);
  }
}

export interface W4A8SessionOptions {
  intraOpNumThreads?: number;
  sessionConfig?: Record<string, string>;
}

/**
 * Thread settings (measured; docs/ARCHITECTURE.md "ONNX Runtime sessions, threads and weight memory"): every node,
 * W4A8MatMul and the decoder ops included, runs on ORT's intra-op threads, and those spin between parallel loops
 * (ONNX Runtime's own default): a decode step is ~110 parallel loops, and without spinning each one wakes the
 * worker with a futex (decode loops 7 % faster with it, docs/BENCHMARKS.md "End to end", runs of 2026-12-07).
 * W4A8_OP_THREADS=pool puts W4A8MatMul on our kernel pool instead, and then ORT's idle workers must not spin
 * while ours work: spinning is off in that mode. A caller's sessionConfig overrides either.
 */
export function w4a8EngineSessionConfig(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return { 'session.intra_op.allow_spinning': env.W4A8_OP_THREADS === 'pool' ? '0' : '1' };
}

class W4A8Session implements EngineSession {
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  constructor(private readonly handle: OrtSessionHandle) {
    this.inputMetadata = handle.inputs.map(metadata);
    this.outputMetadata = handle.outputs.map(metadata);
  }

  // The w4a8 engine takes lastRowOf: a prefill's next-token logits leave as one row ([1, 1, vocab])
  // instead of [1, seq, vocab] (64 MiB at 512 tokens of a 32000 vocabulary, copied and then dropped).
  async run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], opts: RunOptions = {}): Promise<Record<string, ort.Tensor>> {
    const toNative = (what: string) => ([name, t]: [string, ort.Tensor]): OrtFeed => {
      const type = ONNX_ELEMENT_TYPES[t.type as keyof typeof ONNX_ELEMENT_TYPES];
      if (type === undefined) throw new W4A8Error(`${what} "${name}" is a ${t.type} tensor; the w4a8 engine takes numeric and bool tensors`);
      return { name, type, dims: [...t.dims], data: t.data as ArrayBufferView };
    };
    const list = Object.entries(feeds).map(toNative('feed'));
    const into = Object.entries(opts.into ?? {}).map(toNative('output'));
    const out = await runOrtSession(this.handle, list, [...fetches], [...(opts.lastRowOf ?? [])], into);
    const result: Record<string, ort.Tensor> = {};
    for (const o of out) {
      const type = TYPE_BY_NUMBER.get(o.type);
      if (!type) throw new W4A8Error(`output "${o.name}" has ONNX element type ${o.type}, which the w4a8 engine does not return`);
      result[o.name] = tensorOf(type, o.data, o.dims);
    }
    return result;
  }

  async release(): Promise<void> {
    releaseOrtSession(this.handle);
  }
}

/** Opens `modelPath` on the addon's ONNX Runtime with the com.w4a8 domain (external data read by ORT). */
export async function openW4A8Session(modelPath: string, opts: W4A8SessionOptions = {}): Promise<EngineSession> {
  openOrtLibrary(onnxruntimeLibraryPath());
  const handle = await createOrtSession(modelPath, {
    intraOpNumThreads: opts.intraOpNumThreads ?? 0,
    config: { ...w4a8EngineSessionConfig(), ...opts.sessionConfig },
  });
  return new W4A8Session(handle);
}
