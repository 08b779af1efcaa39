// loadNativeWeights: reads a `.w4a8` container (native_container.ts) and prepacks every layer for the
// CPU kernels of this machine, so each layer runs with gemmW4A8 (or gemmW4A16 for activations 'none').
import * as fs from 'node:fs';
import { W4A8Error } from '../util/errors';
import { prepackWeight, type CpuIsa, type CpuPackedWeight } from '../native/kernels';
import { decodeContainer, type NativeLayerEntry, type NativeManifest, type NativeSection } from './native_container';

export interface NativeLayer {
  /** Prepacked for this CPU; gemmW4A8(packed, x, m, { bias }) computes the layer's output. */
  packed: CpuPackedWeight;
  /** The manifest entry: node, tensors, format, n, k, groupSize. */
  meta: NativeLayerEntry;
  /** fp32 [n] bias to pass as gemmW4A8's options.bias (Gemm layers with a constant bias). */
  bias?: Float32Array;
}

export interface NativeWeights {
  manifest: NativeManifest;
  /** Layers by name, in manifest order. */
  layers: Map<string, NativeLayer>;
  /** The ONNX graph (W4A8Linear nodes in place of the quantized layers); parse with modelFromBytes. */
  graph?: Uint8Array;
  /** Frees every packed weight now (otherwise the GC does). */
  dispose(): void;
}

export interface LoadNativeOptions {
  /** Kernels the weights default to (the best available when unset). */
  isa?: CpuIsa;
  /** Keep the canonical arrays beside the packed layout (needed by W4A16 and the references). Default: true when activations are 'none'. */
  keepCanonical?: boolean;
}

function section(bytes: Uint8Array, s: NativeSection): Uint8Array {
  return bytes.subarray(s.offset, s.offset + s.bytes);
}

function floats(bytes: Uint8Array, s: NativeSection): Float32Array {
  const raw = section(bytes, s);
  // Sections are 64-byte aligned in the file; the buffer Node read it into may not be.
  const copy = raw.byteOffset % 4 === 0 ? raw : raw.slice();
  return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
}

/** Reads and checks `file`, then prepacks each layer (on the libuv pool). The file is not modified. */
export async function loadNativeWeights(file: string, options: LoadNativeOptions = {}): Promise<NativeWeights> {
  if (typeof file !== 'string' || file === '') throw new TypeError(`Expected file to be a path to a .w4a8 container but received ${String(file)}`);
  if (options === null || typeof options !== 'object') throw new TypeError('Expected options to be an object { isa?, keepCanonical? }');
  if (options.keepCanonical !== undefined && typeof options.keepCanonical !== 'boolean') {
    throw new TypeError(`Expected keepCanonical to be a boolean but received ${String(options.keepCanonical)}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new W4A8Error(`cannot read the native container ${file}: ${(err as Error).message}`);
  }
  const manifest = decodeContainer(bytes, file);
  const keepCanonical = options.keepCanonical ?? manifest.activations === 'none';
  const layers = new Map<string, NativeLayer>();
  const dispose = () => {
    for (const l of layers.values()) if (!l.packed.disposed) l.packed.dispose();
  };
  try {
    for (const meta of manifest.layers) {
      const packed = await prepackWeight({
        format: meta.format, n: meta.n, k: meta.k, groupSize: meta.groupSize,
        codes: section(bytes, meta.codes), scales: floats(bytes, meta.scales),
        ...(meta.zeroPoints ? { zeroPoints: section(bytes, meta.zeroPoints) } : {}),
        ...(options.isa ? { isa: options.isa } : {}),
        keepCanonical,
      });
      layers.set(meta.name, { packed, meta, ...(meta.biasValues ? { bias: floats(bytes, meta.biasValues).slice() } : {}) });
    }
  } catch (err) {
    dispose();
    throw err;
  }
  return { manifest, layers, graph: manifest.graph ? section(bytes, manifest.graph).slice() : undefined, dispose };
}
