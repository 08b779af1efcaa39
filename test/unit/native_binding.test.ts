// The complete binding (binding.ts) and the status-keyed error mapping (status.ts).
import { native, NATIVE_EXPORTS } from '../../lib/native/binding';
import { quantizeWeight } from '../../lib/native/quant';
import { createCalibStats } from '../../lib/native/calib_stats';
import { mapNativeError, NATIVE_STATUS, nativeStatusOf, type NativeStatusCode } from '../../lib/native/status';
import { CancelledError, W4A8Error } from '../../lib/util/errors';

describe('NativeBinding', () => {
  test('types exactly what the addon exports', () => {
    const exported = Object.keys(native()).sort();
    const cuda = native().buildInfo.cudaCompiled;
    const typed = Object.entries(NATIVE_EXPORTS).filter(([, when]) => when === 'always' || cuda).map(([name]) => name).sort();
    expect(exported).toEqual(typed);
  });
});

function nativeError(code: NativeStatusCode): Error {
  return Object.assign(new Error(`someCall: ${code.toLowerCase()}`), { code, status: NATIVE_STATUS[code] });
}

describe('mapNativeError', () => {
  test('keys on the code the addon sets, never on the message', () => {
    const cases: [NativeStatusCode, new (...a: never[]) => Error, RegExp][] = [
      ['W4A8_NUMERICAL_ERROR', W4A8Error, /NaN or Inf/],
      ['W4A8_OUT_OF_MEMORY', W4A8Error, /out of memory/],
      ['W4A8_UNSUPPORTED', W4A8Error, /not supported/],
      ['W4A8_CUDA_ERROR', W4A8Error, /CUDA/],
      ['W4A8_CANCELLED', CancelledError, /cancelled/],
      ['W4A8_INVALID_ARGUMENT', RangeError, /refused an argument/],
    ];
    for (const [code, cls, text] of cases) {
      const e = mapNativeError(nativeError(code), 'someCall') as Error & { code: string; status: number };
      expect(e).toBeInstanceOf(cls);
      expect(e.message).toMatch(text);
      expect(e.message).toMatch(/^someCall/);
      expect([e.code, e.status]).toEqual([code, NATIVE_STATUS[code]]);
    }
    // A message that reads like a status but carries no code is not reclassified.
    const plain = new Error('x: numerical error');
    expect(mapNativeError(plain, 'x')).toBe(plain);
    expect(nativeStatusOf({ code: 'ENOENT' })).toBeUndefined();
    expect(mapNativeError(nativeError('W4A8_NUMERICAL_ERROR'), 'x', { numerical: 'the weights hold NaN' })).toHaveProperty('message', 'the weights hold NaN');
  });

  test('a real status from the addon arrives mapped, with the caller in its stack', async () => {
    const w = new Float32Array(64 * 8).fill(1);
    w[5] = NaN;
    const err = await quantizeWeight(w, 64, 8, { format: 'int4', groupSize: 32 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(W4A8Error);
    expect(err).toMatchObject({ code: 'W4A8_NUMERICAL_ERROR', status: 5 });
    expect((err as Error).stack).toMatch(/native_binding\.test\.ts/);
    const stats = createCalibStats({ k: 4, sampleRows: 0 });
    await expect(stats.add(new Float32Array([1, 2, Infinity, 4]))).rejects.toMatchObject({ code: 'W4A8_NUMERICAL_ERROR' });
    stats.dispose();
  });
});
