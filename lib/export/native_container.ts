// The `.w4a8` container of `--format native`: quantized layers for our CPU kernels plus the graph
// that says where each layer sits. ONNX Runtime cannot load our kernels as custom ops from Node, so
// the container is read by loadNativeWeights (lib/export/native_load.ts), not by ORT.
//
// Byte layout, version 1 (all integers little-endian; every section starts 64-byte aligned, so a
// reader may map it and hand the arrays to SIMD code without copying):
//   0   8 bytes  magic "W4A8NATV"
//   8   u32      version (1)
//   12  u32      header size (64)
//   16  u64      manifest offset (64)
//   24  u64      manifest length in bytes (UTF-8 JSON, below)
//   32  u64      total file length (a truncated file is refused)
//   40  24 bytes zero
//   64  manifest JSON, zero-padded to a multiple of 64, then the sections.
// The manifest (NativeManifest) lists, per layer, the name, the graph node, its input/output tensors,
// format int4|fp4, n, k, groupSize and where its arrays are (codes, scales, zero points, fp32 bias). Arrays are stored in the canonical,
// ISA-independent MatMulNBits layout of native/include/w4a8/formats.h (codes [n][blocks][groupSize/2]
// low nibble first, fp32 scales [n][blocks], packed zero points [n][ceil(blocks/2)]): the prepacked
// layout depends on the ISA of the machine that runs it, so the loader prepacks at load time.
// The graph section is the ONNX model with each quantized layer's node replaced by
// ai.w4a8.W4A8Linear(x, <weight reference>[, bias]); the weight reference names the layer's arrays.
import { W4A8Error } from '../util/errors';
import { codeBytes, GROUP_SIZES, scaleCount, zeroPointBytes } from '../native/formats';

export const NATIVE_MAGIC = 'W4A8NATV';
export const NATIVE_VERSION = 1;
export const NATIVE_ALIGN = 64;
export const NATIVE_HEADER_BYTES = 64;
export const NATIVE_OP_DOMAIN = 'ai.w4a8';
export const NATIVE_OP_TYPE = 'W4A8Linear';

/** Where one array lies in the file. */
export interface NativeSection {
  offset: number;
  bytes: number;
}

export interface NativeLayerEntry {
  /** Layer name (node name, or the weight name when the node has none): the key of loadNativeWeights' map. */
  name: string;
  /** Name of the W4A8Linear node in the graph section. */
  node: string;
  /** The weight reference: the node's second input. */
  weight: string;
  /** Activation tensor read, and output tensor written. */
  input: string;
  output: string;
  /** Gemm bias tensor name in the graph (an initializer there), when the layer has one. */
  bias?: string;
  format: 'int4' | 'fp4';
  n: number;
  k: number;
  groupSize: number;
  symmetric: boolean;
  codes: NativeSection;
  scales: NativeSection;
  zeroPoints?: NativeSection;
  /** fp32 [n] values of `bias` when it is a constant initializer (a Gemm's C input). */
  biasValues?: NativeSection;
}

export interface NativeManifest {
  format: 'w4a8-native';
  version: number;
  /** 'canonical': formats.h arrays, prepacked by the loader for the CPU it runs on. */
  layout: 'canonical';
  /** 'int8': W4A8 (int8 activations per token and K-group, like MatMulNBits accuracy_level 4); 'none': W4A16. */
  activations: 'int8' | 'none';
  /** The quantization configuration, for reports (configLabel). */
  config: Record<string, unknown>;
  graph?: NativeSection;
  layers: NativeLayerEntry[];
}

export function alignUp(v: number, a = NATIVE_ALIGN): number {
  return Math.ceil(v / a) * a;
}

/** A named array to place in the file. */
export interface SectionData {
  data: Uint8Array;
  /** Called with the section's place once it is known (fills the manifest). */
  place(section: NativeSection): void;
}

/**
 * Lays out header, manifest and sections. The manifest holds the offsets, whose digits change its
 * length, so the section start is fixed first from a generous manifest size estimate.
 */
export function encodeContainer(manifest: NativeManifest, sections: SectionData[]): Uint8Array[] {
  // Offsets are at most 16 digits; reserve room for each one before knowing them.
  const placeholderLength = Buffer.byteLength(JSON.stringify(manifest)) + sections.length * 2 * 20 + 1024;
  let cursor = alignUp(NATIVE_HEADER_BYTES + placeholderLength);
  for (const s of sections) {
    s.place({ offset: cursor, bytes: s.data.byteLength });
    cursor = alignUp(cursor + s.data.byteLength);
  }
  const total = cursor;
  const json = Buffer.from(JSON.stringify(manifest), 'utf8');
  const manifestEnd = NATIVE_HEADER_BYTES + json.length;
  const sectionStart = alignUp(NATIVE_HEADER_BYTES + placeholderLength);
  if (manifestEnd > sectionStart) throw new Error(`internal: the manifest (${json.length} bytes) outgrew its reserved space`);

  const head = new Uint8Array(sectionStart);
  const view = new DataView(head.buffer);
  head.set(Buffer.from(NATIVE_MAGIC, 'ascii'), 0);
  view.setUint32(8, NATIVE_VERSION, true);
  view.setUint32(12, NATIVE_HEADER_BYTES, true);
  view.setBigUint64(16, BigInt(NATIVE_HEADER_BYTES), true);
  view.setBigUint64(24, BigInt(json.length), true);
  view.setBigUint64(32, BigInt(total), true);
  head.set(json, NATIVE_HEADER_BYTES);

  const chunks: Uint8Array[] = [head];
  let written = sectionStart;
  for (const s of sections) {
    chunks.push(s.data);
    written += s.data.byteLength;
    const pad = alignUp(written) - written;
    if (pad > 0) chunks.push(new Uint8Array(pad));
    written += pad;
  }
  if (written !== total) throw new Error(`internal: container length ${written} != planned ${total}`);
  return chunks;
}

function bad(label: string, why: string): W4A8Error {
  return new W4A8Error(`${label} is not a valid w4a8 native container: ${why}; re-export it with \`w4a8 quantize --format native\``);
}

function isInt(v: unknown, min = 0): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

function checkSection(label: string, what: string, s: unknown, fileBytes: number, expectBytes?: number): NativeSection {
  const o = s as NativeSection | undefined;
  if (!o || !isInt(o.offset) || !isInt(o.bytes)) throw bad(label, `${what} has no valid {offset, bytes}`);
  if (o.offset % NATIVE_ALIGN !== 0) throw bad(label, `${what} starts at ${o.offset}, not a multiple of ${NATIVE_ALIGN}`);
  if (o.offset < NATIVE_HEADER_BYTES || o.offset + o.bytes > fileBytes) throw bad(label, `${what} (${o.offset}+${o.bytes}) lies outside the ${fileBytes}-byte file`);
  if (expectBytes !== undefined && o.bytes !== expectBytes) throw bad(label, `${what} holds ${o.bytes} bytes, expected ${expectBytes}`);
  return o;
}

/** Parses and checks header and manifest against the file's bytes (sizes, alignment, bounds). */
export function decodeContainer(bytes: Uint8Array, label: string): NativeManifest {
  if (bytes.byteLength < NATIVE_HEADER_BYTES) throw bad(label, `it has ${bytes.byteLength} bytes, fewer than the ${NATIVE_HEADER_BYTES}-byte header`);
  const magic = Buffer.from(bytes.buffer, bytes.byteOffset, 8).toString('latin1');
  if (magic !== NATIVE_MAGIC) throw bad(label, `the magic is ${JSON.stringify(magic)}, not ${JSON.stringify(NATIVE_MAGIC)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== NATIVE_VERSION) throw new W4A8Error(`${label} is a w4a8 native container of version ${version}; this build reads version ${NATIVE_VERSION} (upgrade w4a8 or re-export)`);
  const total = Number(view.getBigUint64(32, true));
  if (total !== bytes.byteLength) throw bad(label, `the header says ${total} bytes but the file has ${bytes.byteLength} (truncated or appended to)`);
  const mOffset = Number(view.getBigUint64(16, true));
  const mLength = Number(view.getBigUint64(24, true));
  if (mOffset < NATIVE_HEADER_BYTES || mOffset + mLength > total) throw bad(label, `the manifest (${mOffset}+${mLength}) lies outside the file`);
  let m: NativeManifest;
  try {
    m = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + mOffset, mLength).toString('utf8')) as NativeManifest;
  } catch (err) {
    throw bad(label, `the manifest is not JSON (${(err as Error).message})`);
  }
  if (m === null || typeof m !== 'object' || m.format !== 'w4a8-native' || m.layout !== 'canonical') throw bad(label, 'the manifest has no format "w4a8-native" / layout "canonical"');
  if (m.activations !== 'int8' && m.activations !== 'none') throw bad(label, `activations ${JSON.stringify(m.activations)} is neither int8 nor none`);
  if (!Array.isArray(m.layers) || m.layers.length === 0) throw bad(label, 'the manifest lists no layers');
  if (m.graph !== undefined) checkSection(label, 'the graph', m.graph, total);
  const names = new Set<string>();
  for (const [i, l] of m.layers.entries()) {
    const what = `layer ${i}${typeof l?.name === 'string' ? ` (${l.name})` : ''}`;
    if (typeof l?.name !== 'string' || l.name === '') throw bad(label, `${what} has no name`);
    if (names.has(l.name)) throw bad(label, `layer name ${JSON.stringify(l.name)} appears twice`);
    names.add(l.name);
    for (const key of ['node', 'weight', 'input', 'output'] as const) {
      if (typeof l[key] !== 'string' || l[key] === '') throw bad(label, `${what} has no ${key} tensor/node name`);
    }
    if (l.format !== 'int4' && l.format !== 'fp4') throw bad(label, `${what} has format ${JSON.stringify(l.format)}`);
    if (!isInt(l.n, 1) || !isInt(l.k, 1) || l.n > 2 ** 24 || l.k > 2 ** 24) throw bad(label, `${what} has n=${l.n}, k=${l.k}`);
    if (!GROUP_SIZES.includes(l.groupSize)) throw bad(label, `${what} has groupSize ${l.groupSize}, not one of ${GROUP_SIZES.join(', ')}`);
    checkSection(label, `${what} codes`, l.codes, total, codeBytes(l.n, l.k, l.groupSize));
    checkSection(label, `${what} scales`, l.scales, total, 4 * scaleCount(l.n, l.k, l.groupSize));
    if (l.zeroPoints !== undefined) {
      if (l.format === 'fp4') throw bad(label, `${what} is fp4 but has zero points`);
      checkSection(label, `${what} zero points`, l.zeroPoints, total, zeroPointBytes(l.n, l.k, l.groupSize));
    }
    if (l.biasValues !== undefined) checkSection(label, `${what} bias`, l.biasValues, total, l.n * 4);
  }
  return m;
}
