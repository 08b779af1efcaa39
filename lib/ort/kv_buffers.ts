// A decode loop's key/value cache kept in ONE buffer per past input across steps, for models whose
// present outputs come from an attention op that writes only the new rows when its present output
// is its past input's memory: com.w4a8 CachedAttention (the fused decoder of `quantize --format
// w4a8`) and ONNX Runtime's com.microsoft GroupQueryAttention (ORT GenAI's graphs; it shares the
// buffer when present and past are one memory, its "past_present_share_buffer"). Each step feeds the
// buffers as past ([1, kv heads, capacity, head size], the mask's length telling how many rows are
// filled) and binds the present outputs to the same memory, so the op writes only the new rows: no
// copy of the whole cache per step, no new output buffers, nothing for the garbage collector
// (native/include/w4a8/ort_op.h, "the cache in one buffer across steps").
//
// A KvCache stays valid after later steps: a step from the latest cache of its buffers writes in
// place; a step from an older one (a branch), or from one whose buffers are in use by a run still in
// flight, first copies its rows into new buffers. Buffers grow (copied) when a step needs more rows.
import * as ort from 'onnxruntime-node';
import type { ModelProto } from 'onnx-buf';

/** The attention ops whose outputs 1 and 2 are a layer's present key and value, written in place into a shared past. */
const IN_PLACE_ATTENTION_OPS = [
  { domain: 'com.w4a8', opType: 'CachedAttention' },
  { domain: 'com.microsoft', opType: 'GroupQueryAttention' },
] as const;
// New buffers hold the rows needed plus this many (a generation's next tokens), rounded up to it.
const CAPACITY_STEP = 128;

/** Whether every present output named is written by an in-place attention node of `model` (IN_PLACE_ATTENTION_OPS). */
export function presentsFromInPlaceAttention(model: ModelProto, presents: Iterable<string>): boolean {
  const written = new Set<string>();
  for (const n of model.graph?.node ?? []) {
    if (IN_PLACE_ATTENTION_OPS.some((op) => n.domain === op.domain && n.opType === op.opType)) for (const o of n.output.slice(1, 3)) written.add(o);
  }
  const names = [...presents];
  return names.length > 0 && names.every((p) => written.has(p));
}

/** Where a past input's rows lie: dims with the capacity at `lengthAxis`. */
export interface KvLayout {
  /** Past input name -> its present output name. */
  present: string;
  /** Dims of the empty past (batch 1, length 0). */
  emptyDims: readonly number[];
  /** The axis of the sequence length. */
  lengthAxis: number;
}

export class KvBuffers {
  /** Rows written by the latest step (the length of the one cache that may write in place). */
  filled = 0;
  /** A run writing into these buffers is in flight. */
  busy = false;
  readonly arrays = new Map<string, Float32Array>();

  constructor(
    readonly owner: object,
    readonly layouts: ReadonlyMap<string, KvLayout>,
    readonly capacity: number,
  ) {
    for (const [name, l] of layouts) this.arrays.set(name, new Float32Array(elements(l, capacity)));
  }

  /** Rows needed -> the capacity of new buffers. */
  static capacityFor(rows: number, previous = 0): number {
    const want = Math.max(rows + CAPACITY_STEP, 2 * previous);
    return Math.ceil(want / CAPACITY_STEP) * CAPACITY_STEP;
  }

  dims(name: string): number[] {
    return dimsWith(this.layouts.get(name)!, this.capacity);
  }

  /** Copies rows [0, rows) of every past input from `from` (another capacity) into these buffers. */
  copyRows(from: KvBuffers, rows: number): void {
    for (const [name, l] of this.layouts) copySlabs(from.arrays.get(name)!, from.capacity, this.arrays.get(name)!, this.capacity, l, rows);
  }

  /** Copies rows [0, rows) from ordinary past tensors ([.., rows, ..] at the length axis). */
  copyTensors(tensors: Readonly<Record<string, ort.Tensor>>, rows: number): void {
    for (const [name, l] of this.layouts) {
      const t = tensors[name];
      const want = dimsWith(l, rows);
      if (!t || t.type !== 'float32' || t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i])) {
        throw new TypeError(`Expected past "${name}" to be a float32 tensor of dims [${want.join(', ')}] but received ${t ? `${t.type} [${t.dims.join(', ')}]` : 'none'}`);
      }
      copySlabs(t.data as Float32Array, rows, this.arrays.get(name)!, this.capacity, l, rows);
    }
  }
}

/** A KvCache (session.ts) over shared buffers: `length` rows of them are this cache's. */
export class SharedKvCache {
  constructor(
    readonly length: number,
    readonly buffers: KvBuffers,
  ) {}

  /** The rows as ordinary past tensors (copies; the buffers themselves go on changing). */
  get tensors(): Readonly<Record<string, ort.Tensor>> {
    const out: Record<string, ort.Tensor> = {};
    for (const [name, l] of this.buffers.layouts) {
      const data = new Float32Array(elements(l, this.length));
      copySlabs(this.buffers.arrays.get(name)!, this.buffers.capacity, data, this.length, l, this.length);
      out[name] = new ort.Tensor('float32', data, dimsWith(l, this.length));
    }
    return out;
  }
}

/** The past's dims holding `rows` positions. */
function dimsWith(l: KvLayout, rows: number): number[] {
  return l.emptyDims.map((d, i) => (i === l.lengthAxis ? rows : d));
}

function elements(l: KvLayout, rows: number): number {
  return dimsWith(l, rows).reduce((n, d) => n * d, 1);
}

/**
 * The first `rows` positions of an ordinary past tensor whose length axis is `lengthAxis` (a cache
 * rewound after rejected draft tokens); float32 or float16.
 */
export function firstRows(t: ort.Tensor, lengthAxis: number, rows: number): ort.Tensor {
  const l: KvLayout = { present: '', emptyDims: t.dims.map((d, i) => (i === lengthAxis ? 0 : d)), lengthAxis };
  const held = t.dims[lengthAxis];
  if (!(rows >= 0 && rows <= held)) throw new RangeError(`Expected at most ${held} rows but asked for ${rows}`);
  if (t.type === 'float16') {
    const data = new Uint16Array(elements(l, rows));
    copySlabs(t.data as unknown as Uint16Array, held, data, rows, l, rows);
    return new ort.Tensor('float16', data, dimsWith(l, rows));
  }
  if (t.type !== 'float32') throw new TypeError(`Expected a float32 or float16 past tensor but received ${t.type}`);
  const data = new Float32Array(elements(l, rows));
  copySlabs(t.data as Float32Array, held, data, rows, l, rows);
  return new ort.Tensor('float32', data, dimsWith(l, rows));
}

// One block copy per slab (the dims before the length axis): rows x the elements of one row.
function copySlabs<T extends Float32Array | Uint16Array>(src: T, srcRows: number, dst: T, dstRows: number, l: KvLayout, rows: number): void {
  const slabs = l.emptyDims.slice(0, l.lengthAxis).reduce((n, d) => n * d, 1);
  const row = l.emptyDims.slice(l.lengthAxis + 1).reduce((n, d) => n * d, 1);
  for (let s = 0; s < slabs; ++s) dst.set(src.subarray(s * srcRows * row, (s * srcRows + rows) * row) as T, s * dstRows * row);
}
