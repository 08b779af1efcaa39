// Read and write ONNX models. The whole ModelProto is kept (unknown fields included), so a
// read -> write round trip loses nothing. External tensors stay on disk until asked for, and
// saving streams tensor bytes into one side file so weights never pass through one protobuf buffer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation, type ModelProto, type TensorProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { OutputSet } from '../util/output_set';
import { openRegularFile, readExactly } from '../util/regular_file';
import { openContained } from '../util/containment';
import { neverCancelled, signalPoint, yieldToEventLoop, type CancelToken } from '../util/cancel';
import {
  EXTERNAL_ALIGNMENT,
  MAX_TENSOR_BUFFER,
  copyExternalChunks,
  externalFiles,
  externalRef,
  isExternal,
  readExternalBytes,
  validateExternalRefs,
  checkExternalRanges,
  writeAll,
} from './external_data';
import { DataType } from './dtype';
import type { SideFileWriter } from './side_writer';
import { tensorByteSize, tensorRawBytes } from './tensor';
import { forEachTensor } from './walk';
import { checkModelGraph } from './graph_check';

export interface OnnxModel {
  proto: ModelProto;
  /** The file it was read from (absolute), if any. */
  path?: string;
  /** The folder external-data locations are relative to. */
  dir: string;
  /**
   * Set during a streamed write: replaceInitializer passes each new tensor through it (its bytes
   * go to the output's side file at once). Tensors it took point into the output's side file,
   * not into `dir`: only saveModel with the same writer may read them.
   */
  tensorSink?: (t: TensorProto) => TensorProto;
}

export type ExternalDataMode = 'auto' | 'always' | 'never';

export interface SaveOptions {
  /** 'auto' (default) goes external when the inline total would pass AUTO_EXTERNAL_BYTES. */
  externalData?: ExternalDataMode;
  /** The side file's name, beside the model (default `<name>.onnx_data`). */
  externalDataName?: string;
  /** Tensors smaller than this stay inline when writing external data (default 1 KiB). */
  inlineThresholdBytes?: number;
  /** The inline total above which 'auto' goes external (default AUTO_EXTERNAL_BYTES; lowered in tests). */
  autoExternalBytes?: number;
  /** Stage the files in this output set (the caller commits it) instead of committing them alone. */
  into?: OutputSet;
  /**
   * Continue this side file (already staged in `into`, named like the side file of this save):
   * the tensors it holds stay where they are, the others are appended. Finished (synced, closed) here.
   */
  sideWriter?: SideFileWriter;
}

export interface SaveAsyncOptions extends SaveOptions {
  /** Checked between tensors: a signal stops the write and nothing is committed. */
  cancel?: CancelToken;
}

/** Protobuf messages cannot exceed 2 GiB; switch to external data well before that. */
export const AUTO_EXTERNAL_BYTES = 1.8e9;
export const DEFAULT_INLINE_THRESHOLD = 1024;

function parseModel(bytes: Uint8Array, label: string): ModelProto {
  if (bytes.length === 0) throw new W4A8Error(`${label} is not an ONNX model (the file is empty)`);
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes);
  } catch (err) {
    throw new W4A8Error(`${label} is not an ONNX model (protobuf parse failed: ${(err as Error).message})`);
  }
  // Arbitrary bytes sometimes parse as a protobuf; a model always has a graph and an IR version.
  if (!proto.graph || proto.irVersion <= 0n) {
    throw new W4A8Error(`${label} is not an ONNX model (no ${proto.graph ? 'ir_version' : 'graph'} found)`);
  }
  validateExternalRefs(proto, label);
  checkModelGraph(proto, label);
  return proto;
}

/** Parses model bytes; external-data locations are taken relative to `dir`. */
export function modelFromBytes(bytes: Uint8Array, dir: string): OnnxModel {
  return { proto: parseModel(bytes, 'the model bytes'), dir: path.resolve(dir) };
}

/** Reads a model file (a regular file: checked on the opened descriptor). External tensors are not read here (see tensorRawBytes). */
export function loadModel(file: string): OnnxModel {
  const abs = path.resolve(file);
  const f = openRegularFile(abs, 'model', `${file} does not exist`);
  let bytes: Buffer;
  try {
    if (f.size > 2 ** 31) {
      throw new W4A8Error(`${file} is ${f.size} bytes, more than protobuf's 2 GiB limit; it is not a valid ONNX model (large weights belong in external data)`);
    }
    bytes = Buffer.allocUnsafe(f.size);
    readExactly(f.fd, bytes, 0, f.size, 0, file);
  } finally {
    fs.closeSync(f.fd);
  }
  const model = { proto: parseModel(bytes, file), path: abs, dir: path.dirname(abs) };
  checkExternalRanges(model.proto, model.dir, file);
  signalPoint('model-loaded');
  return model;
}

/** True when any tensor of the model is stored as external data. */
export function hasExternalData(model: OnnxModel): boolean {
  let found = false;
  forEachTensor(model.proto, (t) => {
    if (isExternal(t)) found = true;
  });
  return found;
}

/** The default side-file name for `file`: model.onnx -> model.onnx_data. */
export function defaultExternalDataName(file: string): string {
  const base = path.basename(file);
  return base.endsWith('.onnx') ? `${base}_data` : `${base}.onnx_data`;
}

function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

// onnx.proto is proto2: a field is present when it is an own property (defaults live on the
// prototype). Swapping fields for serialization must restore presence too, or a re-save of the
// same model would gain explicit default fields.
type SwappedField = 'rawData' | 'dataLocation' | 'externalData' | 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data';
const SWAPPED: SwappedField[] = ['rawData', 'dataLocation', 'externalData', 'floatData', 'int32Data', 'int64Data', 'doubleData', 'uint64Data'];
const NO_TYPED_DATA = { floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [] };

interface SavedFields {
  t: TensorProto;
  own: Record<SwappedField, boolean>;
  values: Pick<TensorProto, SwappedField>;
}

function setOrUnset<K extends SwappedField>(t: TensorProto, key: K, value: TensorProto[K] | undefined): void {
  if (value === undefined) delete (t as Partial<TensorProto>)[key];
  else t[key] = value;
}

/**
 * Writes the model to `file` (and its side file), atomically: both are staged in an output set
 * (see util/output_set) and swapped in only when complete. The in-memory model is left
 * unchanged and keeps reading its external data from where it was.
 */
export function saveModel(model: OnnxModel, file: string, opts: SaveOptions = {}): void {
  const own = opts.into ? undefined : new OutputSet(file);
  try {
    for (const _ of saveSteps(model, file, opts.into ?? own!, opts)) {
      // synchronous: no yield to the event loop
    }
    own?.commit();
  } catch (err) {
    own?.abort();
    throw err;
  }
}

/** saveModel that yields to the event loop between tensors and stops when `cancel` is set. */
export async function saveModelAsync(model: OnnxModel, file: string, opts: SaveAsyncOptions = {}): Promise<void> {
  const cancel = opts.cancel ?? neverCancelled;
  const own = opts.into ? undefined : new OutputSet(file);
  try {
    for (const _ of saveSteps(model, file, opts.into ?? own!, opts)) {
      await yieldToEventLoop();
      cancel.throwIfCancelled();
    }
    own?.commit();
  } catch (err) {
    own?.abort();
    throw err;
  }
}

/** The write, one step per tensor; files go to `set`'s staging folder. */
function* saveSteps(model: OnnxModel, file: string, set: OutputSet, opts: SaveOptions): Generator<void, void, void> {
  const mode = opts.externalData ?? 'auto';
  if (mode !== 'auto' && mode !== 'always' && mode !== 'never') {
    throw new RangeError(`saveModel: externalData must be 'auto', 'always' or 'never', got ${JSON.stringify(mode)}`);
  }
  const threshold = opts.inlineThresholdBytes ?? DEFAULT_INLINE_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new RangeError(`saveModel: inlineThresholdBytes must be a non-negative integer, got ${threshold}`);
  }
  const autoLimit = opts.autoExternalBytes ?? AUTO_EXTERNAL_BYTES;
  if (!(autoLimit >= 0)) throw new RangeError(`saveModel: autoExternalBytes must be a non-negative number, got ${autoLimit}`);
  const sideName = opts.externalDataName ?? defaultExternalDataName(file);
  if (sideName === '' || sideName !== path.basename(sideName) || sideName === '.' || sideName === '..') {
    throw new RangeError(`saveModel: externalDataName must be a plain file name (no folders), got ${JSON.stringify(sideName)}`);
  }
  const target = path.resolve(file);
  const sidePath = path.join(path.dirname(target), sideName);
  if (sideName === path.basename(target)) throw new RangeError(`saveModel: externalDataName ${sideName} is the model file itself`);

  // Tensors that may move to the side file: the main graph's initializers (raw or typed data),
  // and anything already external (its old side file is not ours to reference).
  let total = 0;
  const candidates: { t: TensorProto; size: number }[] = [];
  forEachTensor(model.proto, (t, where) => {
    const size = isExternal(t) ? (tensorByteSize(t) ?? externalRef(t).length ?? 0) : t.rawData.length || (tensorByteSize(t) ?? 0);
    total += size;
    if (isExternal(t) || (where.isGraphInitializer && t.dataType !== DataType.STRING && size > 0)) candidates.push({ t, size });
  });
  const writer = opts.sideWriter;
  if (writer && (writer.location !== sideName || mode !== 'always')) {
    throw new RangeError(`saveModel: a sideWriter needs externalData 'always' and the side file name ${sideName}, got ${writer.location}`);
  }
  const external = mode === 'always' || (mode === 'auto' && total > autoLimit);
  // Tensors already streamed into the writer's file stay where they are.
  const toSide = external ? candidates.filter((c) => c.size >= threshold && !writer?.owns(c.t)) : [];
  const sideSet = new Set(toSide);
  const toInline = candidates.filter((c) => isExternal(c.t) && !sideSet.has(c) && !writer?.owns(c.t));

  // Never write over a file this model still reads lazily: the rename would pull it away.
  const sources = externalFiles({ ...model.proto, graph: model.proto.graph && { ...model.proto.graph, initializer: model.proto.graph.initializer.filter((t) => !writer?.owns(t)) } }, model.dir);
  for (const src of sources) {
    if (sameFile(src, target) || (toSide.length > 0 && sameFile(src, sidePath))) {
      throw new W4A8Error(
        `cannot write ${toSide.length > 0 && sameFile(src, sidePath) ? sidePath : target}: the model being saved reads its weights from that file; ` +
          `write to another path`,
      );
    }
  }
  if (!external && total > 2 ** 31 - 2 ** 20) {
    throw new W4A8Error(`the model holds ${total} bytes of tensors, too many for one protobuf file; save with externalData 'auto' or 'always'`);
  }

  const saved: SavedFields[] = [];
  const swap = (t: TensorProto, next: { [K in SwappedField]?: TensorProto[K] | undefined }): void => {
    const own = Object.fromEntries(SWAPPED.map((k) => [k, Object.prototype.hasOwnProperty.call(t, k)])) as Record<SwappedField, boolean>;
    const values = Object.fromEntries(SWAPPED.map((k) => [k, t[k]])) as Pick<TensorProto, SwappedField>;
    saved.push({ t, own, values });
    for (const k of SWAPPED) if (k in next) setOrUnset(t, k, next[k]);
  };
  let sideFd: number | undefined;
  try {
    if (toSide.length > 0 || writer) {
      if (writer) sideFd = writer.descriptor;
      else {
        set.add(sidePath, 'external data file');
        sideFd = fs.openSync(set.staged(sidePath), 'w');
      }
      let pos = writer?.position ?? 0;
      for (const { t } of toSide) {
        pos = Math.ceil(pos / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
        let written: number;
        if (isExternal(t)) written = yield* copyExternalChunks(model.dir, t, tensorByteSize(t), sideFd, pos);
        else {
          const bytes = tensorRawBytes(model, t); // raw_data as is, or typed fields packed
          writeAll(sideFd, bytes, pos);
          written = bytes.length;
        }
        swap(t, {
          ...NO_TYPED_DATA,
          rawData: undefined,
          dataLocation: TensorProto_DataLocation.EXTERNAL,
          externalData: [
            { $typeName: 'onnx.StringStringEntryProto', key: 'location', value: sideName },
            { $typeName: 'onnx.StringStringEntryProto', key: 'offset', value: String(pos) },
            { $typeName: 'onnx.StringStringEntryProto', key: 'length', value: String(written) },
          ],
        });
        pos += written;
        writer?.advanceTo(pos);
        yield;
      }
      if (writer) writer.finish();
      else {
        fs.fsyncSync(sideFd);
        fs.closeSync(sideFd);
      }
      sideFd = undefined;
    }
    for (const { t } of toInline) {
      swap(t, { rawData: readExternalBytes(model.dir, t, tensorByteSize(t)) as TensorProto['rawData'], dataLocation: undefined, externalData: [] });
    }
    const bytes = toBinary(ModelProtoSchema, model.proto);
    set.add(target, 'output model');
    fs.writeFileSync(set.staged(target), bytes);
  } catch (err) {
    if (writer) writer.close();
    else if (sideFd !== undefined) fs.closeSync(sideFd);
    throw err;
  } finally {
    for (const s of saved.reverse()) {
      for (const k of SWAPPED) setOrUnset(s.t, k, s.own[k] ? s.values[k] : undefined);
    }
  }
}

/** The model's bytes as they are now; throws if it is too large for one protobuf. */
export function modelBytes(model: OnnxModel): Uint8Array {
  return toBinary(ModelProtoSchema, model.proto);
}

/**
 * What ONNX Runtime needs to open the model from memory: the proto's bytes, and the folder its
 * external-data locations are relative to (session config entry
 * `session.model_external_initializers_file_folder_path`). ORT then opens the side files itself,
 * memory-mapping large initializers, so no side file passes through a Node buffer: any size,
 * any number of files, any layout (offset/length ranges, several tensors per file, one file per tensor).
 */
export function ortModelSource(model: OnnxModel): { bytes: Uint8Array; externalDataFolder?: string } {
  const bytes = modelBytes(model);
  return hasExternalData(model) ? { bytes, externalDataFolder: model.dir } : { bytes };
}

/**
 * Bytes for `InferenceSession.create(bytes, { externalData })`: the proto as is, plus the whole
 * content of each side file it references (keyed by the location string ORT looks up).
 * Meant for small models; the library's own sessions use ortModelSource, which reads no side file.
 */
export function serializeForOrt(model: OnnxModel): { bytes: Uint8Array; externalData?: { path: string; data: Uint8Array }[] } {
  const locations = new Set<string>();
  forEachTensor(model.proto, (t) => {
    if (isExternal(t)) locations.add(externalRef(t).location);
  });
  const bytes = modelBytes(model);
  if (locations.size === 0) return { bytes };
  const externalData = [...locations].map((location) => {
    const file = path.resolve(model.dir, location.replace(/\\/g, '/'));
    const f = openContained(model.dir, file, 'external data file', 'the model');
    try {
      if (f.size > MAX_TENSOR_BUFFER) {
        throw new W4A8Error(`external data file ${file} is ${f.size} bytes, more than one buffer holds; ONNX Runtime must open this model by path, not from bytes`);
      }
      const data = Buffer.allocUnsafe(f.size);
      readExactly(f.fd, data, 0, f.size, 0, file);
      return { path: location, data };
    } finally {
      fs.closeSync(f.fd);
    }
  });
  return { bytes, externalData };
}
