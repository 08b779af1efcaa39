// The argument checks of every lib/native wrapper, in one dialect: a TypeError for a value of the
// wrong kind, a RangeError for one out of range, each message naming the argument, what was expected
// and what was received ("Expected an integer for m but received 1.5"). The addon trusts what passes
// here; it re-checks only what it must to never read out of bounds.
//
// Typed arrays are recognised by their internal tag, never by instanceof: jest runs tests in another
// realm and worker threads hand over arrays whose constructors are not this realm's.

/** The typed-array kinds the addon reads or writes. */
export interface TypedArrays {
  Float32Array: Float32Array;
  Float64Array: Float64Array;
  Uint8Array: Uint8Array;
  Int8Array: Int8Array;
  Uint16Array: Uint16Array;
  Int32Array: Int32Array;
}
export type TypedArrayName = keyof TypedArrays;

/** A short description of a received value for messages: `Float32Array(12)`, `"avx9"`, `null`. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) {
    const tag = Object.prototype.toString.call(v).slice(8, -1);
    const length = (v as unknown as { length?: number }).length;
    return `${tag}(${length ?? v.byteLength})`;
  }
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'symbol') return v.toString();
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') {
    const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name;
    return `an object (${ctor ?? 'no prototype'})`;
  }
  return typeof v;
}

/** True when `v` is a typed array of kind `kind`, whatever realm or thread made it. */
export function isTypedArray<K extends TypedArrayName>(v: unknown, kind: K): v is TypedArrays[K] {
  return ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === `[object ${kind}]`;
}

/** Checks an integer argument in min..max (inclusive). */
export function expectInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`Expected an integer for ${name} but received ${describe(v)}`);
  }
  if (v < min || v > max) {
    throw new RangeError(max >= Number.MAX_SAFE_INTEGER
      ? `Expected ${name} >= ${min} but received ${v}`
      : `Expected ${name} in ${min}..${max} but received ${v}`);
  }
  return v;
}

export interface NumberRange {
  /** Smallest value allowed (or just above it when `minExclusive`). */
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** Checks a finite number argument in a range such as (0, 1]. */
export function expectNumber(name: string, v: unknown, range: NumberRange = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TypeError(`Expected a finite number for ${name} but received ${describe(v)}`);
  }
  const { min = -Infinity, max = Infinity, minExclusive = false, maxExclusive = false } = range;
  const above = minExclusive ? v > min : v >= min;
  const below = maxExclusive ? v < max : v <= max;
  if (!above || !below) {
    const lo = min === -Infinity ? '(-inf' : `${minExclusive ? '(' : '['}${min}`;
    const hi = max === Infinity ? 'inf)' : `${max}${maxExclusive ? ')' : ']'}`;
    throw new RangeError(`Expected ${name} in ${lo}, ${hi} but received ${v}`);
  }
  return v;
}

/** Checks an optional boolean argument; undefined gives `fallback`. */
export function expectBoolean(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new TypeError(`Expected ${name} to be a boolean but received ${describe(v)}`);
  return v;
}

/** Checks that a string argument is one of `choices`. */
export function expectOneOf<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
    throw new TypeError(`Expected ${name} to be one of ${choices.map((c) => `'${c}'`).join(', ')} but received ${describe(v)}`);
  }
  return v as T;
}

/** Checks a required options object: a plain object (not an array, a typed array or a class instance). */
export function expectObject(name: string, v: unknown, shape: string): Record<string, unknown> {
  const proto = v !== null && typeof v === 'object' ? Object.getPrototypeOf(v) : undefined;
  if (proto === undefined || (proto !== null && Object.getPrototypeOf(proto) !== null)) {
    // A plain object's prototype is Object.prototype of some realm, whose own prototype is null.
    throw new TypeError(`Expected ${name} to be an object ${shape} but received ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

/** Checks an optional options object; undefined gives {}. */
export function expectOptions(name: string, v: unknown): Record<string, unknown> {
  return v === undefined ? {} : expectObject(name, v, '{ ... }');
}

/**
 * Checks a typed array of one of `kinds`, and its length when `length` is given; `shape` explains
 * the length in the caller's terms ("m=3 x k=40").
 */
export function expectTypedArray<K extends TypedArrayName>(name: string, v: unknown, kinds: K | readonly K[],
  length?: number, shape?: string): TypedArrays[K] {
  const list: readonly K[] = typeof kinds === 'string' ? [kinds] : kinds;
  if (!list.some((kind) => isTypedArray(v, kind))) {
    throw new TypeError(`Expected ${name} to be a ${list.join(' or ')} but received ${describe(v)}`);
  }
  const arr = v as TypedArrays[K];
  if (length !== undefined && arr.length !== length) {
    throw new RangeError(`Expected ${name} of length ${length}${shape ? ` (${shape})` : ''} but received ${arr.length}`);
  }
  return arr;
}

/** Refuses an output array that shares memory with an input: the kernels read inputs while writing. */
export function expectDisjoint(outName: string, out: ArrayBufferView, inputs: Record<string, ArrayBufferView | null | undefined>): void {
  for (const [name, v] of Object.entries(inputs)) {
    if (!v || v.buffer !== out.buffer) continue;
    if (out.byteOffset < v.byteOffset + v.byteLength && v.byteOffset < out.byteOffset + out.byteLength) {
      throw new RangeError(`Expected ${outName} apart from ${name} but ${outName} overlaps ${name}; pass a separate ${outName} array`);
    }
  }
}
