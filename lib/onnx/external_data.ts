// External data: tensors whose bytes live in a side file named by (location, offset, length)
// relative to the model's folder. Locations come from untrusted files, so every one is checked
// right after parsing, before any file is opened: no absolute paths, nothing outside the folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import type { ModelProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { openContained } from '../util/containment';
import { readExactly, writeExactly } from '../util/regular_file';
import { byteSizeOf } from './dtype';
import { forEachTensor } from './walk';

export interface ExternalRef {
  location: string;
  offset: number;
  /** Absent when the file omits it: the tensor then runs to its computed size. */
  length?: number;
}

/** Side-file alignment: lets a reader mmap each tensor page-aligned (ORT does for large ones). */
export const EXTERNAL_ALIGNMENT = 4096;

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

function parseCount(value: string, what: string, tensor: string, label: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new W4A8Error(`${label}: tensor "${tensor}" has external data ${what} "${value}", which is not a non-negative integer`);
  }
  return Number(value);
}

/** Reads the (location, offset, length) entries of an external tensor and checks them. */
export function externalRef(t: TensorProto, label = 'model'): ExternalRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const e of t.externalData) {
    if (e.key === 'location') location = e.value;
    else if (e.key === 'offset') offset = parseCount(e.value, 'offset', t.name, label);
    else if (e.key === 'length') length = parseCount(e.value, 'length', t.name, label);
  }
  if (location === undefined || location === '') {
    throw new W4A8Error(`${label}: tensor "${t.name}" is marked as external data but names no location`);
  }
  checkLocation(location, t.name, label);
  return { location, offset, length };
}

function checkLocation(location: string, tensor: string, label: string): void {
  const refuse = (why: string): never => {
    throw new W4A8Error(
      `${label}: tensor "${tensor}" has external data location "${location}", ${why}; ` +
        `external data must be a relative path inside the model's folder`,
    );
  };
  if (location.includes('\0')) refuse('which contains a NUL byte');
  if (path.posix.isAbsolute(location) || path.win32.isAbsolute(location)) refuse('which is an absolute path');
  const normalized = path.posix.normalize(location.replace(/\\/g, '/'));
  if (normalized === '..' || normalized.startsWith('../')) refuse("which escapes the model's folder");
  if (normalized === '.' || normalized.endsWith('/')) refuse('which is a folder, not a file');
}

/** Validates every external reference in the model; throws on the first bad one. */
export function validateExternalRefs(proto: ModelProto, label: string): void {
  forEachTensor(proto, (t) => {
    if (isExternal(t)) externalRef(t, label);
  });
}

/**
 * Every external tensor's bytes lie inside its side file, as ONNX Runtime will need them: each
 * side file is opened once (a regular file inside the model's folder) and its size compared with
 * the tensors' ranges (the length entry, or the size dims and type give). Nothing is read.
 */
export function checkExternalRanges(proto: ModelProto, dir: string, label: string): void {
  const sizes = new Map<string, number>();
  forEachTensor(proto, (t) => {
    if (!isExternal(t)) return;
    const ref = externalRef(t, label);
    const file = externalPath(dir, ref.location);
    let size = sizes.get(file);
    if (size === undefined) {
      const f = openContained(dir, file, `external data file (for tensor "${t.name}")`, 'the model');
      fs.closeSync(f.fd);
      size = f.size;
      sizes.set(file, size);
    }
    const count = t.dims.reduce((a, d) => a * Number(d), 1);
    const length = ref.length ?? byteSizeOf(t.dataType, count) ?? size - ref.offset;
    if (ref.offset + length > size) {
      throw new W4A8Error(`${label} is not a loadable ONNX model: tensor "${t.name}" needs bytes ${ref.offset}..${ref.offset + length} of ${file}, which has only ${size} bytes (truncated file?)`);
    }
  });
}

/** The absolute path of the file a location names. */
export function externalPath(dir: string, location: string): string {
  return path.resolve(dir, location.replace(/\\/g, '/'));
}

function openForRead(dir: string, file: string, tensor: string): number {
  return openContained(dir, file, `external data file (for tensor "${tensor}")`, 'the model').fd;
}

export interface OpenRange {
  file: string;
  fd: number;
  offset: number;
  length: number;
}

/**
 * Opens the side file of an external tensor and checks its byte range lies inside the file.
 * `expected` is the size its dims and type give; a length that disagrees is refused.
 * The caller closes `fd`.
 */
function openRange(dir: string, t: TensorProto, expected: number | undefined): OpenRange {
  const ref = externalRef(t);
  const file = externalPath(dir, ref.location);
  const fd = openForRead(dir, file, t.name);
  try {
    const size = fs.fstatSync(fd).size;
    const length = ref.length ?? expected ?? size - ref.offset;
    if (expected !== undefined && length !== expected) {
      throw new W4A8Error(`tensor "${t.name}" has external data length ${length}, but its dims and type need ${expected} bytes`);
    }
    if (length < 0 || ref.offset + length > size) {
      throw new W4A8Error(
        `tensor "${t.name}" needs bytes ${ref.offset}..${ref.offset + length} of ${file}, which has only ${size} bytes (truncated file?)`,
      );
    }
    return { file, fd, offset: ref.offset, length };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** openRange for readers of part of a tensor (onnx/weight_slices.ts): the caller closes `fd`. */
export function openExternalRange(dir: string, t: TensorProto, expected: number | undefined): OpenRange {
  return openRange(dir, t, expected);
}

function readFully(r: OpenRange, t: TensorProto, into: Buffer, at: number, count: number, from: number): void {
  readExactly(r.fd, into, at, count, from, `${r.file} (tensor "${t.name}")`);
}

/** Node's Buffer limit; tensors above it are streamed by copyExternalBytes, never loaded whole. */
export const MAX_TENSOR_BUFFER = 2 ** 32 - 1;

/** Reads one external tensor's bytes (a single positioned read of its range). */
export function readExternalBytes(dir: string, t: TensorProto, expected: number | undefined): Uint8Array {
  const r = openRange(dir, t, expected);
  try {
    if (r.length > MAX_TENSOR_BUFFER) {
      throw new W4A8Error(`tensor "${t.name}" holds ${r.length} bytes, more than one buffer can hold (${MAX_TENSOR_BUFFER}); it can only be copied (streamed), not loaded`);
    }
    const out = Buffer.allocUnsafe(r.length);
    readFully(r, t, out, 0, r.length, r.offset);
    return out;
  } finally {
    fs.closeSync(r.fd);
  }
}

const COPY_CHUNK = 16 * 1024 * 1024;

/** Copies an external tensor's bytes into `outFd` at `outPos` in bounded chunks (never the whole tensor in memory). */
export function copyExternalBytes(dir: string, t: TensorProto, expected: number | undefined, outFd: number, outPos: number): number {
  const steps = copyExternalChunks(dir, t, expected, outFd, outPos);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** copyExternalBytes one chunk per step, so that a writer can check for cancellation inside a huge tensor. */
export function* copyExternalChunks(dir: string, t: TensorProto, expected: number | undefined, outFd: number, outPos: number): Generator<void, number, void> {
  const r = openRange(dir, t, expected);
  try {
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(r.length, 1)));
    for (let done = 0; done < r.length; ) {
      const n = Math.min(buf.length, r.length - done);
      readFully(r, t, buf, 0, n, r.offset + done);
      writeAll(outFd, buf.subarray(0, n), outPos + done);
      done += n;
      if (done < r.length) yield;
    }
    return r.length;
  } finally {
    fs.closeSync(r.fd);
  }
}

export function writeAll(fd: number, data: Uint8Array, position: number): void {
  writeExactly(fd, data, position);
}

/** The distinct side files (absolute paths) the model's external tensors read from. */
export function externalFiles(proto: ModelProto, dir: string): string[] {
  const files = new Set<string>();
  forEachTensor(proto, (t) => {
    if (isExternal(t)) files.add(externalPath(dir, externalRef(t).location));
  });
  return [...files];
}
