// Validated wrappers over the addon's ONNX Runtime (native/addon/ort_session_bindings.cpp): the
// addon dlopen()s a libonnxruntime.so.1 given by path (lib/ort resolves onnxruntime-node's), and
// creates sessions with the com.w4a8 custom-op domain registered. Model loading and runs happen on
// the libuv pool. Tensors cross as plain {name, type (ONNX element type number), dims, data}.
import { W4A8Error } from '../util/errors';
import { native, type NativeOrtFeed, type NativeOrtHandle, type NativeOrtOutput, type NativeOrtValueInfo } from './binding';
import { describe, expectInt, expectObject } from './validate';

export type { NativeOrtFeed as OrtFeed, NativeOrtOutput as OrtOutput, NativeOrtValueInfo as OrtValueInfo, NativeOrtHandle as OrtHandle };

/** ONNX TensorProto element types the addon's sessions exchange. */
export const ONNX_ELEMENT_TYPES = { float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11 } as const;

export interface OrtSessionOptions {
  /** ORT's intra-op threads (0: ORT's default). */
  intraOpNumThreads?: number;
  /** Session config entries (AddSessionConfigEntry), e.g. { 'session.intra_op.allow_spinning': '0' }. */
  config?: Record<string, string>;
}

let openedFrom: string | undefined;

/** Opens ONNX Runtime from `libraryPath` once per process; returns its version ("1.30.0"). */
export function openOrtLibrary(libraryPath: string): string {
  if (typeof libraryPath !== 'string' || libraryPath.length === 0) {
    throw new TypeError(`Expected libraryPath to be the path of libonnxruntime.so.1 but received ${describe(libraryPath)}`);
  }
  if (openedFrom !== undefined && openedFrom !== libraryPath) {
    throw new W4A8Error(`ONNX Runtime is already open from ${openedFrom}; a process uses one library (asked for ${libraryPath})`);
  }
  try {
    const version = native().ortOpen(libraryPath);
    openedFrom = libraryPath;
    return version;
  } catch (err) {
    throw new W4A8Error(`cannot open ONNX Runtime from ${libraryPath}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface OrtSessionHandle {
  handle: NativeOrtHandle;
  inputs: NativeOrtValueInfo[];
  outputs: NativeOrtValueInfo[];
}

/** Creates a session from a model path (ORT reads external data beside it). Call openOrtLibrary first. */
export async function createOrtSession(modelPath: string, opts: OrtSessionOptions = {}): Promise<OrtSessionHandle> {
  if (typeof modelPath !== 'string' || modelPath.length === 0) throw new TypeError(`Expected modelPath to be a path but received ${describe(modelPath)}`);
  if (openedFrom === undefined) throw new W4A8Error('ONNX Runtime is not open: call openOrtLibrary(path) first');
  const threads = expectInt('intraOpNumThreads', opts.intraOpNumThreads ?? 0, 0, 4096);
  const entries: [string, string][] = [];
  for (const [k, v] of Object.entries(opts.config ? expectObject('config', opts.config, '{ key: value }') : {})) {
    if (typeof v !== 'string') throw new TypeError(`Expected config["${k}"] to be a string but received ${describe(v)}`);
    entries.push([k, v]);
  }
  return native().ortCreateSession(modelPath, threads, entries);
}

function checkTensors(what: string, list: NativeOrtFeed[]): void {
  if (!Array.isArray(list)) throw new TypeError(`Expected ${what}s to be an array but received ${describe(list)}`);
  for (const f of list) {
    if (typeof f?.name !== 'string' || !Array.isArray(f.dims) || !ArrayBuffer.isView(f.data)) {
      throw new TypeError(`Expected each ${what} to be {name, type, dims, data} but received ${describe(f)}`);
    }
    f.dims.forEach((d, i) => expectInt(`dims[${i}] of ${what} "${f.name}"`, d, 0));
  }
}

/**
 * One run. Feeds are read in place. Outputs of 256 KiB or more come back as ArrayBuffers over ONNX
 * Runtime's own output memory (released when the buffer is collected), smaller ones as copies.
 * `lastRowOf` names fetches of which only the last row along dimension -2 is returned (dims [..., 1, n]).
 * `into` names outputs that ONNX Runtime writes into the given arrays instead (their dims must be the
 * outputs' shapes; an array may also be a feed's: a KV cache kept in one buffer). They are not returned.
 */
export async function runOrtSession(
  session: OrtSessionHandle, feeds: NativeOrtFeed[], fetches: string[], lastRowOf: string[] = [], into: NativeOrtFeed[] = [],
): Promise<NativeOrtOutput[]> {
  checkTensors('feed', feeds);
  if (!Array.isArray(fetches) || fetches.length === 0 || fetches.some((f) => typeof f !== 'string')) {
    throw new TypeError(`Expected fetches to be a non-empty array of output names but received ${describe(fetches)}`);
  }
  if (!Array.isArray(lastRowOf) || lastRowOf.some((n) => !fetches.includes(n))) {
    throw new RangeError(`Expected lastRowOf to list fetched output names but received ${describe(lastRowOf)}`);
  }
  checkTensors('output', into);
  const both = into.find((o) => fetches.includes(o.name));
  if (both) throw new RangeError(`Expected output "${both.name}" either fetched or written into a given array, not both`);
  return native().ortRun(session.handle, feeds, fetches, lastRowOf, into);
}

export function releaseOrtSession(session: OrtSessionHandle): void {
  native().ortRelease(session.handle);
}
