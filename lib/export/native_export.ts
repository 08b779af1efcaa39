// `--format native`: each quantized layer's node becomes ai.w4a8.W4A8Linear(x, <weight ref>[, bias])
// in the graph, and its canonical arrays go into the .w4a8 container (native_container.ts explains the
// bytes). The graph is kept whole (external tensors inlined) so one file carries everything.
import { TensorProto_DataLocation, type NodeProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { GROUP_SIZES } from '../native/formats';
import { makeNode } from '../onnx/build';
import { isExternal } from '../onnx/external_data';
import { AUTO_EXTERNAL_BYTES, modelBytes, type OnnxModel } from '../onnx/model';
import { tensorElementCount, tensorRawBytes, tensorToFloat32 } from '../onnx/tensor';
import type { QuantConfig } from '../quant/config';
import type { QuantizedLayer, QuantizedModelParts } from '../quant/types';
import * as fs from 'node:fs';
import { tempPathFor } from '../util/atomic_write';
import { dropIfUnused, ensureOpset, mainGraph, readerCount, uniqueName } from './graph_edit';
import {
  encodeContainer, NATIVE_OP_DOMAIN, NATIVE_OP_TYPE, NATIVE_VERSION, type NativeLayerEntry, type NativeManifest, type SectionData,
} from './native_container';

function attr(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  if (!a) return undefined;
  return a.type === 2 ? Number(a.i) : a.f;
}

/** The kernels compute y = x W^T + bias; a Gemm with alpha/beta/transA would need more. */
function checkLayer(q: QuantizedLayer): void {
  const l = q.layer;
  if (q.grouping !== 'oc') {
    throw new W4A8Error(`--format native: layer "${l.name}" is grouped along N (ic); the CPU kernels take groups along K only: use --grouping oc or --format sim`);
  }
  if (!GROUP_SIZES.includes(q.groupSize)) {
    throw new W4A8Error(`--format native: layer "${l.name}" has block size ${q.groupSize}; the CPU kernels take ${GROUP_SIZES.join(', ')}: use --group 128 or --format sim`);
  }
  if (l.node.opType === 'Gemm') {
    const alpha = attr(l.node, 'alpha') ?? 1, beta = attr(l.node, 'beta') ?? 1;
    if (alpha !== 1 || beta !== 1 || (attr(l.node, 'transA') ?? 0) !== 0) {
      throw new W4A8Error(`--format native: layer "${l.name}" is a Gemm with alpha=${alpha}, beta=${beta}; only plain Gemm layers map onto the kernels (use --exclude "${l.name}" or --format sim)`);
    }
  }
}

/**
 * exportQuantized's step for --format native: the layer's node becomes W4A8Linear reading a weight
 * reference (not an initializer). ONNX Runtime cannot run the result; writeNativeContainer writes it.
 */
export function replaceWithNativeLinear(model: OnnxModel, q: QuantizedLayer, config: QuantConfig): void {
  if (config.aformat === 'fp8') throw new W4A8Error('--format native: the CPU kernels quantize activations to int8 only; use --aformat int8 or none, or --format sim for fp8');
  checkLayer(q);
  const l = q.layer;
  const shared = readerCount(model, l.weightName) > 1;
  const weight = shared ? uniqueName(model, `${l.weightName}_w4a8`) : l.weightName;
  const bias = l.node.opType === 'Gemm' && l.node.input[2] ? l.node.input[2] : undefined;
  const name = l.node.name || uniqueName(model, `${l.weightName}/W4A8Linear`);
  const replacement = makeNode(NATIVE_OP_TYPE, [l.node.input[0], weight, ...(bias ? [bias] : [])], [...l.node.output],
    { N: l.n, K: l.k, group_size: q.groupSize, weight_format: weightFormat(config, q), activations: config.aformat },
    { name, domain: NATIVE_OP_DOMAIN });
  const g = mainGraph(model);
  const i = g.node.indexOf(l.node);
  if (i < 0) throw new Error(`node "${l.node.name}" is not in the main graph`);
  g.node[i] = replacement;
  l.node = replacement;
  if (shared) dropIfUnused(model, l.weightName);
  else {
    // The node now reads the same name as a reference into the container: the float tensor goes.
    g.initializer = g.initializer.filter((t) => t.name !== l.weightName);
    g.input = g.input.filter((v) => v.name !== l.weightName);
  }
}

function weightFormat(config: QuantConfig, q: QuantizedLayer): string {
  if (config.wformat === 'fp4') return 'fp4';
  return q.zeroPoints ? 'int4-asym' : 'int4-sym';
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The Gemm bias as fp32 [n] when it is an initializer of that size (a computed or broadcast bias stays in the graph only). */
function constantBias(model: OnnxModel, name: string, n: number): Float32Array | undefined {
  const t = mainGraph(model).initializer.find((x) => x.name === name);
  if (!t || tensorElementCount(t) !== n) return undefined;
  return tensorToFloat32(model, t);
}

/** External tensors read into the graph, so the container does not depend on a side file. */
function inlineExternal(model: OnnxModel): void {
  let total = 0;
  for (const t of mainGraph(model).initializer) {
    if (!isExternal(t)) continue;
    const raw = tensorRawBytes(model, t);
    total += raw.byteLength;
    if (total > AUTO_EXTERNAL_BYTES) {
      throw new W4A8Error(`--format native: the float tensors left in the graph pass ${AUTO_EXTERNAL_BYTES / 1e9} GB, more than one ONNX protobuf holds; exclude fewer layers or use --format matmulnbits`);
    }
    t.rawData = raw as Uint8Array<ArrayBuffer>;
    t.externalData = [];
    t.dataLocation = TensorProto_DataLocation.DEFAULT;
  }
}

/** Writes the chunks one after another to a temp file beside `file`, then renames it into place. */
function writeChunksAtomic(file: string, chunks: Uint8Array[]): void {
  const tmp = tempPathFor(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    for (const c of chunks) {
      let done = 0;
      while (done < c.byteLength) done += fs.writeSync(fd, c, done, c.byteLength - done);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Writes the container atomically, from a model that went through exportQuantized(model, parts, 'native'). */
export function writeNativeContainer(file: string, model: OnnxModel, parts: QuantizedModelParts, config: QuantConfig): NativeManifest {
  for (const q of parts.layers) {
    if (q.layer.node.opType !== NATIVE_OP_TYPE || q.layer.node.domain !== NATIVE_OP_DOMAIN) {
      throw new Error(`writeNativeContainer: layer "${q.layer.name}" is still a ${q.layer.node.opType}; run exportQuantized(model, parts, 'native') first`);
    }
  }
  const activations = config.aformat === 'none' ? 'none' : 'int8';
  const layers: NativeLayerEntry[] = [];
  const sections: SectionData[] = [];
  for (const q of parts.layers) {
    const l = q.layer;
    const node = l.node;
    const where = { node: node.name, weight: node.input[1], bias: node.input[2] || undefined };
    const entry: NativeLayerEntry = {
      name: l.name, node: where.node, weight: where.weight, input: l.node.input[0], output: l.node.output[0],
      ...(where.bias ? { bias: where.bias } : {}),
      format: config.wformat, n: l.n, k: l.k, groupSize: q.groupSize, symmetric: q.zeroPoints === undefined,
      // Placeholders: encodeContainer sizes the manifest before the offsets are known.
      codes: { offset: 0, bytes: 0 }, scales: { offset: 0, bytes: 0 },
      ...(q.zeroPoints ? { zeroPoints: { offset: 0, bytes: 0 } } : {}),
    };
    layers.push(entry);
    sections.push({ data: q.codes, place: (s) => (entry.codes = s) });
    sections.push({ data: bytesOf(q.scales), place: (s) => (entry.scales = s) });
    if (q.zeroPoints) sections.push({ data: q.zeroPoints, place: (s) => (entry.zeroPoints = s) });
    const biasValues = where.bias ? constantBias(model, where.bias, l.n) : undefined;
    if (biasValues) {
      entry.biasValues = { offset: 0, bytes: 0 };
      sections.push({ data: bytesOf(biasValues), place: (s) => (entry.biasValues = s) });
    }
  }
  ensureOpset(model, NATIVE_OP_DOMAIN, 1);
  inlineExternal(model);
  const manifest: NativeManifest = {
    format: 'w4a8-native', version: NATIVE_VERSION, layout: 'canonical', activations,
    config: { ...config }, graph: { offset: 0, bytes: 0 }, layers,
  };
  const graph = modelBytes(model);
  sections.push({ data: graph, place: (s) => (manifest.graph = s) });
  writeChunksAtomic(file, encodeContainer(manifest, sections));
  return manifest;
}
