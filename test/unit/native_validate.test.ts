// The one argument dialect of lib/native (validate.ts): TypeError / RangeError whose message names
// the argument, the expectation and the value, and typed arrays accepted from any realm.
import * as vm from 'node:vm';
import { gemmW4A8, prepackWeight } from '../../lib/native/kernels';
import { quantizeWeight } from '../../lib/native/quant';
import { transposeMatrix } from '../../lib/native/tensor_layout';
import { countNonFinite } from '../../lib/native/tensor_codecs';
import {
  describe as describeValue, expectBoolean, expectDisjoint, expectInt, expectNumber, expectObject, expectOneOf, expectOptions,
  expectTypedArray, isTypedArray,
} from '../../lib/native/validate';

// A realm of its own, as a worker thread or a sandbox hands arrays over: its constructors are not ours.
const otherRealm = vm.createContext({});
function foreign<T>(code: string): T {
  return vm.runInContext(code, otherRealm) as T;
}

describe('validate.ts', () => {
  test('integers: TypeError for a non-integer, RangeError out of range, both naming the argument', () => {
    expect(expectInt('m', 3, 1, 8)).toBe(3);
    expect(() => expectInt('m', 1.5, 1, 8)).toThrow(new TypeError('Expected an integer for m but received 1.5'));
    expect(() => expectInt('m', '3', 1, 8)).toThrow(new TypeError('Expected an integer for m but received "3"'));
    expect(() => expectInt('m', 9, 1, 8)).toThrow(new RangeError('Expected m in 1..8 but received 9'));
    expect(() => expectInt('groupSize', -1, 1)).toThrow(new RangeError('Expected groupSize >= 1 but received -1'));
  });

  test('numbers, booleans, choices and option objects', () => {
    expect(() => expectNumber('clipRatio', 0, { min: 0, minExclusive: true, max: 1 })).toThrow('Expected clipRatio in (0, 1] but received 0');
    expect(() => expectNumber('theta', NaN)).toThrow(TypeError);
    expect(expectBoolean('sync', undefined, true)).toBe(true);
    expect(() => expectBoolean('sync', 1, true)).toThrow('Expected sync to be a boolean but received 1');
    expect(() => expectOneOf('isa', 'avx9', ['scalar', 'avx2'])).toThrow("Expected isa to be one of 'scalar', 'avx2' but received \"avx9\"");
    expect(expectOptions('options', undefined)).toEqual({});
    expect(() => expectOptions('options', new Date())).toThrow(TypeError);
    expect(() => expectObject('kron', [1], '{ a, b }')).toThrow('Expected kron to be an object { a, b } but received an array of length 1');
    expect(expectObject('o', foreign('({ a: 1 })'), '{ a }')).toEqual({ a: 1 });
    expect(expectObject('o', Object.create(null), '{ }')).toBeDefined();
  });

  test('typed arrays by kind and length, whatever realm made them', () => {
    const mine = new Float32Array(4);
    const theirs = foreign<Float32Array>('new Float32Array(4)');
    expect(theirs instanceof Float32Array).toBe(false);
    expect(isTypedArray(mine, 'Float32Array')).toBe(true);
    expect(isTypedArray(theirs, 'Float32Array')).toBe(true);
    expect(isTypedArray(foreign('new Float64Array(4)'), 'Float32Array')).toBe(false);
    expect(isTypedArray({ length: 4 }, 'Float32Array')).toBe(false);
    expect(expectTypedArray('x', theirs, 'Float32Array', 4)).toBe(theirs);
    expect(() => expectTypedArray('x', new Float64Array(4), 'Float32Array')).toThrow(new TypeError('Expected x to be a Float32Array but received Float64Array(4)'));
    expect(() => expectTypedArray('rows', new Int8Array(2), ['Float32Array', 'Uint16Array'])).toThrow('Expected rows to be a Float32Array or Uint16Array');
    expect(() => expectTypedArray('x', mine, 'Float32Array', 6, 'm=2 x k=3')).toThrow(new RangeError('Expected x of length 6 (m=2 x k=3) but received 4'));
    expect(describeValue(Buffer.alloc(3))).toBe('Uint8Array(3)');
  });

  test('an output that overlaps an input is refused', () => {
    const buf = new Float32Array(8);
    expect(() => expectDisjoint('out', buf.subarray(4), { x: buf.subarray(0, 4) })).not.toThrow();
    expect(() => expectDisjoint('out', buf.subarray(3), { x: buf.subarray(0, 4) })).toThrow('Expected out apart from x but out overlaps x');
  });
});

describe('the wrappers accept typed arrays of another realm', () => {
  test('kernels, quantizer, layout and codecs', async () => {
    const n = 16, k = 32, g = 16;
    const codes = foreign<Uint8Array>(`new Uint8Array(${n * (k / g) * (g / 2)}).fill(0x98)`);
    const scales = foreign<Float32Array>(`new Float32Array(${n * (k / g)}).fill(0.5)`);
    const w = await prepackWeight({ format: 'int4', n, k, groupSize: g, codes, scales });
    const y = await gemmW4A8(w, foreign<Float32Array>(`new Float32Array(${k}).fill(1)`), 1);
    expect(y.length).toBe(n);
    w.dispose();
    const q = await quantizeWeight(foreign<Float32Array>(`Float32Array.from({ length: ${k * n} }, (_, i) => Math.sin(i))`), k, n,
      { format: 'int4', groupSize: 32 });
    expect(q.scales.length).toBe(n);
    expect(await transposeMatrix(foreign<Float32Array>('new Float32Array([1, 2, 3, 4, 5, 6])'), 2, 3)).toEqual(new Float32Array([1, 4, 2, 5, 3, 6]));
    expect(countNonFinite(foreign<Float32Array>('new Float32Array([1, NaN, Infinity])'))).toBe(2);
  });
});
