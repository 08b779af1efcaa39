// Wrong arguments never crash the process: many random wrong values go straight to the RAW
// binding (which must throw or reject, never read out of bounds) and to the validating wrappers
// (which must throw TypeError / RangeError naming the argument).
import {
  fillRandom, gemmW4A16, gemmW4A8, gemmW4A8Kron, gemmW4A8Sync, kroneckerAdd, prepackWeight, prepackWeightSync,
  rawCpuKernels, setNumThreads, type CpuPackedWeight, type KronFactors, type PrepackOptions,
} from '../../lib/native/kernels';

function detachedFloat32(length: number): Float32Array {
  const v = new Float32Array(length);
  structuredClone(v.buffer, { transfer: [v.buffer] });
  return v; // length 0 now, buffer detached
}

// Values that are wrong for most parameters; generated fresh for every use.
function wrongValues(): unknown[] {
  const r = Math.random();
  return [
    undefined, null, 0, -1, -7, NaN, Infinity, -Infinity, 1.5, 2 ** 31, 2 ** 53, 1e300, -0.5, '4', '', 'avx9000', true, false,
    {}, [], [1, 2, 3], () => 1, Symbol('s'), 10n, new Date(), new Proxy({}, {}), Object.create(null),
    new Float64Array(8), new Uint8Array(3), new Int8Array(16), new Uint16Array(16), new Float32Array(0),
    new Float32Array(Math.floor(r * 50) + 1), new Uint8Array(Math.floor(r * 50) + 1), detachedFloat32(64),
    new DataView(new ArrayBuffer(16)), new ArrayBuffer(64), { length: 64 }, Buffer.alloc(16),
  ];
}

function label(v: unknown): string {
  try {
    return typeof v === 'symbol' ? v.toString() : `${typeof v}:${String(v).slice(0, 30)}`;
  } catch {
    return typeof v;
  }
}

async function outcome(fn: () => unknown): Promise<'ok' | 'threw' | 'rejected'> {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    return 'threw';
  }
  if (result instanceof Promise) {
    try {
      await result;
    } catch (err) {
      expect(err).toBeInstanceOf(Error);
      return 'rejected';
    }
  }
  return 'ok';
}

const N = 64, K = 100, GS = 32, BLOCKS = 4, M = 3;

function validWeightArrays() {
  const codes = new Uint8Array(N * BLOCKS * (GS / 2));
  fillRandom(codes, 1 + Math.floor(Math.random() * 1e6), 0, 255);
  const scales = new Float32Array(N * BLOCKS);
  fillRandom(scales, 2 + Math.floor(Math.random() * 1e6), 0.001, 0.02);
  const zeroPoints = new Uint8Array(N * 2);
  fillRandom(zeroPoints, 3 + Math.floor(Math.random() * 1e6), 0, 255);
  return { codes, scales, zeroPoints };
}

function floats(count: number): Float32Array {
  const v = new Float32Array(count);
  fillRandom(v, Math.floor(Math.random() * 1e9), 0, 1, true);
  return v;
}

let weight: CpuPackedWeight;
beforeAll(() => {
  weight = prepackWeightSync({ format: 'int4', n: N, k: K, groupSize: GS, ...validWeightArrays() });
});
afterAll(() => setNumThreads(0));

// Each raw call with valid arguments; the fuzzer replaces one position at a time.
function rawCalls(): { name: string; args: () => unknown[] }[] {
  const raw = rawCpuKernels();
  const w = validWeightArrays();
  const kronA = floats(2 * 8 * 10), kronB = floats(2 * 8 * 10);
  return [
    { name: 'cpuPrepackWeight', args: () => [0, N, K, GS, w.codes, w.scales, w.zeroPoints, null, true, true] },
    { name: 'cpuGemmW4A8', args: () => [weight, floats(M * K), M, new Float32Array(M * N), floats(N), 0, null, true] },
    { name: 'cpuGemmW4A8Reference', args: () => [weight, floats(M * K), M, new Float32Array(M * N), null, 1, true] },
    { name: 'cpuGemmW4A16', args: () => [weight, floats(M * K), M, new Float32Array(M * N), null, 'avx2', false] },
    { name: 'cpuGemmW4A16Reference', args: () => [weight, floats(M * K), M, new Float32Array(M * N), null, true] },
    { name: 'cpuGemmDequantizedF64', args: () => [weight, floats(M * K), M, new Float64Array(M * N), true] },
    { name: 'cpuDequantizeKN', args: () => [weight, new Float32Array(N * K), true] },
    { name: 'cpuKroneckerAdd', args: () => [2, 8, 10, 8, 10, kronA, kronB, floats(M * K), M, new Float32Array(M * N), null, false] },
    { name: 'cpuGemmW4A8Kron', args: () => [weight, floats(M * K), M, new Float32Array(M * N), null, 0, 2, 8, 10, 8, 10, kronA, kronB, false, true] },
    { name: 'cpuFillRandom', args: () => [new Float32Array(10), 5, 0, 1, false] },
    { name: 'setNumThreads', args: () => [2] },
    { name: 'cpuIsaUnavailableReason', args: () => ['avx2'] },
  ].map((c) => ({ ...c, fn: (raw as unknown as Record<string, (...a: unknown[]) => unknown>)[c.name] }))
    .map((c) => {
      expect(typeof c.fn).toBe('function');
      return { name: c.name, args: c.args };
    });
}

describe('raw binding: wrong arguments throw or reject, the process lives', () => {
  test('every call works with valid arguments (the baseline the fuzzer perturbs)', async () => {
    const raw = rawCpuKernels() as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const c of rawCalls()) expect([c.name, await outcome(() => raw[c.name](...c.args()))]).toEqual([c.name, 'ok']);
  });

  test('one argument at a time replaced by wrong values', async () => {
    const raw = rawCpuKernels() as unknown as Record<string, (...a: unknown[]) => unknown>;
    let failed = 0, total = 0;
    for (const c of rawCalls()) {
      const base = c.args();
      for (let pos = 0; pos < base.length; ++pos) {
        for (const bad of wrongValues()) {
          const args = c.args();
          args[pos] = bad;
          const o = await outcome(() => raw[c.name](...args));
          total += 1;
          if (o !== 'ok') failed += 1;
        }
      }
      // Dropping trailing arguments and calling with none.
      for (let len = 0; len < base.length; ++len) await outcome(() => raw[c.name](...c.args().slice(0, len)));
    }
    // Most replacements are errors (a few are legitimately fine, e.g. null for an optional bias).
    expect(failed / total).toBeGreaterThan(0.8);
  });

  test('wrong lengths are refused natively, not read past', async () => {
    const raw = rawCpuKernels();
    const w = validWeightArrays();
    expect(() => raw.cpuPrepackWeight(0, N, K, GS, w.codes.subarray(1), w.scales, null, null, true)).toThrow(RangeError);
    expect(() => raw.cpuPrepackWeight(0, N, K + 100, GS, w.codes, w.scales, null, null, true)).toThrow(RangeError);
    expect(() => raw.cpuPrepackWeight(1, N, K, GS, w.codes, w.scales, w.zeroPoints, null, true)).toThrow(RangeError);
    expect(() => raw.cpuGemmW4A8(weight, floats(M * K - 1), M, new Float32Array(M * N), null, 0, null, true)).toThrow(RangeError);
    expect(() => raw.cpuGemmW4A8(weight, floats(M * K), M + 1, new Float32Array(M * N), null, 0, null, true)).toThrow(RangeError);
    expect(() => raw.cpuGemmW4A8(weight, floats(M * K), M, new Float32Array(M * N), floats(N - 1), 0, null, true)).toThrow(RangeError);
    const shared = new Float32Array(M * K + M * N);
    expect(() => raw.cpuGemmW4A8(weight, shared.subarray(0, M * K), M, shared.subarray(M * K - 1, M * K - 1 + M * N), null, 0, null, true))
      .toThrow(/overlaps/);
    expect(() => raw.cpuKroneckerAdd(1, 8, 10, 8, 10, floats(79), floats(80), floats(M * K), M, new Float32Array(M * N), null, true)).toThrow(RangeError);
    expect(() => new (raw.CpuPackedWeight as unknown as new (...a: unknown[]) => unknown)()).toThrow(TypeError);
    expect(() => new (raw.CpuPackedWeight as unknown as new (...a: unknown[]) => unknown)({})).toThrow(TypeError);
    const getter = Object.getOwnPropertyDescriptor(raw.CpuPackedWeight.prototype, 'n')?.get;
    expect(() => getter?.call({})).toThrow();
    // An odd object that only looks like a weight.
    const fake = Object.create(raw.CpuPackedWeight.prototype) as CpuPackedWeight;
    expect(() => raw.cpuGemmW4A8(fake, floats(M * K), M, new Float32Array(M * N), null, 0, null, true)).toThrow();
  });

  test('the process is alive and the kernels still right afterwards', () => {
    const x = floats(M * K);
    const raw = rawCpuKernels();
    const y = new Float32Array(M * N), ref = new Float32Array(M * N);
    raw.cpuGemmW4A8(weight, x, M, y, null, 0, null, true);
    raw.cpuGemmW4A8Reference(weight, x, M, ref, null, 0, true);
    expect(y).toEqual(ref);
    expect(y.some((v) => v !== 0)).toBe(true);
  });
});

describe('wrappers: clear TypeError / RangeError for wrong arguments', () => {
  const expectClean = async (fn: () => unknown, ctx: string) => {
    let err: unknown;
    try {
      await fn();
    } catch (e) {
      err = e;
    }
    if (!(err instanceof TypeError || err instanceof RangeError)) {
      throw new Error(`${ctx}: expected a TypeError or RangeError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
    expect((err as Error).message).toMatch(/Expected|overlaps|not available|no zero points/);
  };

  test('the message names the argument, the expectation and the value', async () => {
    const w = validWeightArrays();
    await expect(prepackWeight({ format: 'int4', n: 64, k: 100, groupSize: 32, codes: new Uint8Array(100), scales: w.scales }))
      .rejects.toThrow('Expected codes of length 4096 (n=64 x 4 blocks x 16 bytes) but received 100');
    await expect(prepackWeight({ format: 'int4', n: 64, k: 100, groupSize: 24, codes: w.codes, scales: w.scales }))
      .rejects.toThrow('Expected groupSize in 16, 32, 64, 128, 256 but received 24');
    expect(() => gemmW4A8Sync(weight, floats(5), M)).toThrow('Expected x of length 300 (m=3 x k=100) but received 5');
    await expect(gemmW4A8(weight, floats(M * K), -2)).rejects.toThrow('Expected m in 1..16777216 but received -2');
  });

  test('random wrong values in every field of every wrapper', async () => {
    const base = (): PrepackOptions => ({ format: 'int4', n: N, k: K, groupSize: GS, ...validWeightArrays() });
    for (const field of ['format', 'n', 'k', 'groupSize', 'codes', 'scales', 'zeroPoints', 'isa', 'keepCanonical'] as const) {
      for (const bad of wrongValues()) {
        if (bad === undefined && (field === 'zeroPoints' || field === 'isa' || field === 'keepCanonical')) continue; // optional
        if (bad === null && (field === 'zeroPoints' || field === 'isa')) continue; // null = absent
        if (typeof bad === 'boolean' && field === 'keepCanonical') continue;
        const opts = { ...base(), [field]: bad } as PrepackOptions;
        await expectClean(() => prepackWeight(opts), `prepackWeight ${field}=${label(bad)}`);
      }
    }
    for (const bad of wrongValues()) {
      await expectClean(() => prepackWeight(bad as PrepackOptions), `prepackWeight(${label(bad)})`);
      await expectClean(() => gemmW4A8(bad as CpuPackedWeight, floats(M * K), M), `gemmW4A8 weight=${label(bad)}`);
      if (!(bad instanceof Float32Array) || bad.length !== M * K) await expectClean(() => gemmW4A16(weight, bad as Float32Array, M), `gemmW4A16 x=${label(bad)}`);
      if (bad !== M) await expectClean(() => gemmW4A8(weight, floats(M * K), bad as number), `gemmW4A8 m=${label(bad)}`);
      for (const opt of ['bias', 'act', 'out', 'isa'] as const) {
        if (bad === undefined || (bad === null && (opt === 'bias' || opt === 'out' || opt === 'isa'))) continue;
        await expectClean(() => gemmW4A8(weight, floats(M * K), M, { [opt]: bad } as never), `gemmW4A8 ${opt}=${label(bad)}`);
      }
      const plain = bad !== null && typeof bad === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(bad));
      if (bad !== undefined && !plain) await expectClean(() => gemmW4A8(weight, floats(M * K), M, bad as never), `gemmW4A8 options=${label(bad)}`);
    }
    const kron = (): KronFactors => ({ terms: 2, aRows: 8, aCols: 10, bRows: 8, bCols: 10, a: floats(160), b: floats(160) });
    for (const field of ['terms', 'aRows', 'aCols', 'bRows', 'bCols', 'a', 'b'] as const) {
      for (const bad of wrongValues()) {
        const kt = { ...kron(), [field]: bad } as KronFactors;
        await expectClean(() => kroneckerAdd(kt, floats(M * K), M, new Float32Array(M * N)), `kroneckerAdd ${field}=${label(bad)}`);
        await expectClean(() => gemmW4A8Kron(weight, kt, floats(M * K), M), `gemmW4A8Kron ${field}=${label(bad)}`);
      }
    }
    // A Kronecker shape that does not match the weight.
    await expectClean(() => gemmW4A8Kron(weight, { terms: 1, aRows: 8, aCols: 10, bRows: 4, bCols: 10, a: floats(80), b: floats(40) }, floats(M * K), M), 'kron shape');
    // Output overlapping the input.
    const buf = new Float32Array(M * K + M * N);
    await expectClean(() => gemmW4A8(weight, buf.subarray(0, M * K), M, { out: buf.subarray(M * K - 4, M * K - 4 + M * N) }), 'aliasing out');
  });
});
