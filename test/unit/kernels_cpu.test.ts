// CPU kernels through the N-API binding: each kernel on each ISA present against its reference
// binding, on odd shapes with fresh random inputs (the seed is printed on failure).
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import {
  CPU_ISAS, GROUP_SIZES, cpuIsaUnavailableReason, dequantizeKN, fillRandom, gemmDequantizedF64, gemmW4A16,
  gemmRunsInline, gemmW4A16Reference, gemmW4A16Sync, gemmW4A8, INLINE_MAX_MACS, gemmW4A8Kron, gemmW4A8Reference, gemmW4A8Sync, kroneckerAdd,
  numThreads, prepackWeight, prepackWeightSync, setNumThreads,
  type CpuIsa, type CpuPackedWeight, type CpuWeightFormat, type KronFactors,
} from '../../lib/native/kernels';

const seed0 = Math.floor(Math.random() * 1e9);
let seed = seed0;
const nextSeed = (): number => ++seed;
const randInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

interface Case {
  format: CpuWeightFormat;
  n: number;
  k: number;
  groupSize: number;
  m: number;
  withZeroPoints: boolean;
  withBias: boolean;
}

function randomCase(): Case {
  const format: CpuWeightFormat = Math.random() < 0.3 ? 'fp4' : 'int4';
  return {
    format,
    n: randInt(1, 70),
    k: randInt(1, 300),
    groupSize: GROUP_SIZES[randInt(0, GROUP_SIZES.length - 1)],
    m: randInt(1, 30), // <= 8: GEMV paths; more: panel paths with 12/4/1-token tiles
    withZeroPoints: format === 'int4' && Math.random() < 0.6,
    withBias: Math.random() < 0.5,
  };
}

function randomWeightArrays(c: Case) {
  const blocks = Math.ceil(c.k / c.groupSize);
  const codes = new Uint8Array(c.n * blocks * (c.groupSize / 2));
  fillRandom(codes, nextSeed(), 0, 255);
  const scales = new Float32Array(c.n * blocks);
  fillRandom(scales, nextSeed(), 0.001, 0.05);
  let zeroPoints: Uint8Array | undefined;
  if (c.withZeroPoints) {
    zeroPoints = new Uint8Array(c.n * Math.ceil(blocks / 2));
    fillRandom(zeroPoints, nextSeed(), 0, 255);
  }
  return { codes, scales, zeroPoints };
}

function randomFloats(count: number): Float32Array {
  const v = new Float32Array(count);
  fillRandom(v, nextSeed(), 0, 1, true);
  return v;
}

/** max |a - b| / (max |b| + tiny), a scale-free closeness measure. */
function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, mag = 1e-30;
  for (let i = 0; i < b.length; ++i) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    mag = Math.max(mag, Math.abs(b[i]));
  }
  return diff / mag;
}

const describeCase = (c: Case): string => `seed0=${seed0} ${JSON.stringify(c)}`;

afterAll(() => setNumThreads(0));

for (const isa of CPU_ISAS) {
  const reason = cpuIsaUnavailableReason(isa);
  if (reason) {
    // Printed so that the log says why this ISA went untested on this machine.
    console.log(`kernels_cpu: skipping isa '${isa}': ${reason}`);
  }
  const maybe = reason ? describe.skip : describe;
  maybe(`CPU kernels on isa '${isa}'${reason ? ` (SKIPPED: ${reason})` : ''}`, () => {
    test('W4A8 matches the reference bit for bit; W4A16 matches float64 within fp32 rounding', async () => {
      for (let trial = 0; trial < 12; ++trial) {
        const c = randomCase();
        const arrays = randomWeightArrays(c);
        const w = await prepackWeight({ format: c.format, n: c.n, k: c.k, groupSize: c.groupSize, ...arrays, isa: isa as CpuIsa });
        expect(w.isa).toBe(isa);
        const x = randomFloats(c.m * c.k);
        const bias = c.withBias ? randomFloats(c.n) : undefined;
        for (const act of ['token-group', 'token'] as const) {
          const y = await gemmW4A8(w, x, c.m, { bias, act });
          const ref = await gemmW4A8Reference(w, x, c.m, { bias, act });
          if (!y.every((v, i) => Object.is(v, ref[i]))) throw new Error(`W4A8 ${act} differs from the reference: ${describeCase(c)}`);
        }
        const truth = await gemmDequantizedF64(w, x, c.m);
        const withBias = Float64Array.from(truth, (v, i) => v + (bias ? bias[i % c.n] : 0));
        const y16 = await gemmW4A16(w, x, c.m, { bias });
        const ref16 = await gemmW4A16Reference(w, x, c.m, { bias });
        expect({ err: relMaxDiff(ref16, withBias) < 1e-6, c: describeCase(c) }).toEqual({ err: true, c: describeCase(c) });
        expect({ err: relMaxDiff(y16, withBias) < 2e-5, c: describeCase(c) }).toEqual({ err: true, c: describeCase(c) });
        // The W4A8 error against float64 is the activation quantization: small but not zero.
        const y8 = await gemmW4A8(w, x, c.m, { bias });
        expect(relMaxDiff(y8, withBias)).toBeLessThan(0.05);
        w.dispose();
      }
    });

    test('Kronecker adapter and the fused W4A8 + Kronecker call match their references', async () => {
      for (let trial = 0; trial < 6; ++trial) {
        const terms = randInt(1, 3), aRows = randInt(1, 9), aCols = randInt(1, 9), bRows = randInt(1, 19), bCols = randInt(1, 19);
        const kron: KronFactors = { terms, aRows, aCols, bRows, bCols, a: randomFloats(terms * aRows * aCols), b: randomFloats(terms * bRows * bCols) };
        const m = randInt(1, 6), n = aRows * bRows, k = aCols * bCols;
        const x = randomFloats(m * k), y0 = randomFloats(m * n);
        const y = y0.slice(), ref = y0.slice();
        await kroneckerAdd(kron, x, m, y, { isa: isa as CpuIsa });
        await kroneckerAdd(kron, x, m, ref, { isa: 'reference' });
        const ctx = `seed0=${seed0} kron ${JSON.stringify({ terms, aRows, aCols, bRows, bCols, m })}`;
        expect({ ok: relMaxDiff(y, ref) < 1e-5, ctx }).toEqual({ ok: true, ctx });
        // The adapter must have done something (y0 is not a fixed point for random factors).
        expect(relMaxDiff(y, y0)).toBeGreaterThan(1e-3);

        const c: Case = { format: 'int4', n, k, groupSize: 16, m, withZeroPoints: true, withBias: true };
        const w = await prepackWeight({ format: 'int4', n, k, groupSize: 16, ...randomWeightArrays(c), isa: isa as CpuIsa });
        const bias = randomFloats(n);
        const fused = await gemmW4A8Kron(w, kron, x, m, { bias });
        const fusedRef = await gemmW4A8Kron(w, kron, x, m, { bias, reference: true });
        expect({ ok: relMaxDiff(fused, fusedRef) < 1e-5, ctx }).toEqual({ ok: true, ctx });
        // Fused = W4A8 + adapter, computed separately.
        const parts = await gemmW4A8(w, x, m, { bias });
        await kroneckerAdd(kron, x, m, parts, { isa: isa as CpuIsa });
        expect(fused).toEqual(parts);
        w.dispose();
      }
    });
  });
}

describe('CPU kernels: threads, async, lifetime', () => {
  test('results do not depend on the thread count', async () => {
    const c: Case = { format: 'int4', n: 77, k: 200, groupSize: 32, m: 5, withZeroPoints: true, withBias: false };
    const w = prepackWeightSync({ format: 'int4', n: c.n, k: c.k, groupSize: 32, ...randomWeightArrays(c) });
    const x = randomFloats(c.m * c.k);
    setNumThreads(1);
    expect(numThreads()).toBe(1);
    const a8 = gemmW4A8Sync(w, x, c.m), a16 = gemmW4A16Sync(w, x, c.m);
    setNumThreads(0);
    const b8 = gemmW4A8Sync(w, x, c.m), b16 = gemmW4A16Sync(w, x, c.m);
    expect(b8).toEqual(a8);
    expect(b16).toEqual(a16);
    w.dispose();
  });

  test('concurrent async calls agree with sync ones, and an output buffer is honoured', async () => {
    const c: Case = { format: 'fp4', n: 40, k: 256, groupSize: 64, m: 3, withZeroPoints: false, withBias: true };
    const w = await prepackWeight({ format: 'fp4', n: c.n, k: c.k, groupSize: 64, ...randomWeightArrays(c) });
    const xs = [0, 1, 2, 3].map(() => randomFloats(c.m * c.k));
    // inline: false keeps these on the libuv pool, at the same time (a call this small runs inline by default).
    const results = await Promise.all(xs.map((x) => gemmW4A8(w, x, c.m, { inline: false })));
    xs.forEach((x, i) => expect(results[i]).toEqual(gemmW4A8Sync(w, x, c.m)));
    const out = new Float32Array(c.m * c.n);
    const y = await gemmW4A16(w, xs[0], c.m, { out });
    expect(y).toBe(out);
    expect(out).toEqual(gemmW4A16Sync(w, xs[0], c.m));
  });

  test('dispose() during a call lets the call finish; later calls reject cleanly', async () => {
    const c: Case = { format: 'int4', n: 512, k: 1024, groupSize: 128, m: 16, withZeroPoints: true, withBias: false };
    const w = await prepackWeight({ format: 'int4', n: c.n, k: c.k, groupSize: 128, ...randomWeightArrays(c) });
    const x = randomFloats(c.m * c.k);
    const expected = gemmW4A8Sync(w, x, c.m);
    const pending = gemmW4A8(w, x, c.m, { inline: false });
    w.dispose();
    expect(w.disposed).toBe(true);
    expect(await pending).toEqual(expected);
    await expect(gemmW4A8(w, x, c.m)).rejects.toThrow(/disposed/);
  });

  test('short async W4A8 calls run on the calling thread, long ones on the pool, with the same result', async () => {
    const c: Case = { format: 'int4', n: 48, k: 96, groupSize: 32, m: 3, withZeroPoints: true, withBias: true };
    const arrays = randomWeightArrays(c);
    const w = await prepackWeight({ format: 'int4', n: c.n, k: c.k, groupSize: 32, ...arrays });
    const x = randomFloats(c.m * c.k);
    const bias = randomFloats(c.n);
    expect(gemmRunsInline(w, c.m)).toBe(true);
    expect(gemmRunsInline(w, c.m, { isa: 'scalar' })).toBe(false);  // ~50x slower kernels stay off the event loop
    expect(gemmRunsInline(w, c.m, { inline: false })).toBe(false);
    expect(gemmRunsInline(w, Math.floor(INLINE_MAX_MACS / (c.n * c.k)) + 1)).toBe(false);
    // Inline: the call has finished when gemmW4A8 returns its Promise (no event-loop turn needed).
    const out = new Float32Array(c.m * c.n);
    const pending = gemmW4A8(w, x, c.m, { bias, out });
    expect(out).toEqual(gemmW4A8Sync(w, x, c.m, { bias }));
    expect(await pending).toBe(out);
    expect(await gemmW4A8(w, x, c.m, { bias, inline: false })).toEqual(out);
    expect(await gemmW4A8(w, x, c.m, { bias, inline: true })).toEqual(out);
    // Errors of an inline call still arrive as rejections, and the option is checked.
    await expect(gemmW4A8(w, new Float32Array(5), c.m)).rejects.toThrow(RangeError);
    await expect(gemmW4A8(w, x, c.m, { inline: 'yes' as unknown as boolean })).rejects.toThrow(TypeError);
    w.dispose();
    await expect(gemmW4A8(w, x, c.m)).rejects.toThrow(/disposed/);
  });

  test('keepCanonical: false keeps W4A8 working and refuses the canonical-only calls', async () => {
    const c: Case = { format: 'int4', n: 24, k: 64, groupSize: 32, m: 2, withZeroPoints: false, withBias: false };
    const arrays = randomWeightArrays(c);
    const full = await prepackWeight({ format: 'int4', n: 24, k: 64, groupSize: 32, ...arrays });
    const lean = await prepackWeight({ format: 'int4', n: 24, k: 64, groupSize: 32, ...arrays, keepCanonical: false });
    expect(lean.bytes).toBeLessThan(full.bytes);
    const x = randomFloats(c.m * c.k);
    expect(await gemmW4A8(lean, x, c.m)).toEqual(await gemmW4A8(full, x, c.m));
    await expect(gemmW4A16(lean, x, c.m)).rejects.toThrow(/keepCanonical/);
    await expect(dequantizeKN(lean)).rejects.toThrow(/keepCanonical/);
  });

  test('dequantizeKN gives the ONNX [K][N] matrix whose product is the float64 reference', async () => {
    const c: Case = { format: 'int4', n: 9, k: 40, groupSize: 16, m: 1, withZeroPoints: true, withBias: false };
    const w = await prepackWeight({ format: 'int4', n: 9, k: 40, groupSize: 16, ...randomWeightArrays(c) });
    const kn = await dequantizeKN(w);
    // x = e_j picks row j of [K][N]: the float64 product must equal it exactly.
    for (const j of [0, 17, 39]) {
      const x = new Float32Array(40);
      x[j] = 1;
      const y = await gemmDequantizedF64(w, x, 1);
      expect(Array.from(y)).toEqual(Array.from(kn.subarray(j * 9, j * 9 + 9)));
    }
  });

  test('worker threads load the addon on their own and do not disturb the main thread', async () => {
    const addon = process.env.W4A8_ADDON ?? path.resolve(__dirname, '..', '..', 'build', 'addon', 'Release', 'w4a8.node');
    const code = `
      const b = require(${JSON.stringify(addon)});
      const { parentPort } = require('node:worker_threads');
      const codes = new Uint8Array(32 * 2 * 16); b.cpuFillRandom(codes, 7, 0, 255);
      const w = b.cpuPrepackWeight(0, 32, 64, 32, codes, new Float32Array(64).fill(0.01), null, null, true);
      const x = new Float32Array(64); b.cpuFillRandom(x, 8, 0, 1, true);
      const y = new Float32Array(32); b.cpuGemmW4A8(w, x, 1, y, null, 0, null, true);
      parentPort.postMessage(Array.from(y));`;
    const results: number[][] = [];
    for (let i = 0; i < 2; ++i) {
      const worker = new Worker(code, { eval: true });
      results.push(await new Promise<number[]>((resolve, reject) => { worker.on('message', resolve); worker.on('error', reject); }));
      await worker.terminate();
    }
    // The same seeded weight on the main thread gives the same answer.
    const codes = new Uint8Array(32 * 2 * 16);
    fillRandom(codes, 7, 0, 255);
    const w = prepackWeightSync({ format: 'int4', n: 32, k: 64, groupSize: 32, codes, scales: new Float32Array(64).fill(0.01) });
    const x = new Float32Array(64);
    fillRandom(x, 8, 0, 1, true);
    const y = Array.from(gemmW4A8Sync(w, x, 1));
    expect(results[0]).toEqual(y);
    expect(results[1]).toEqual(y);
  });

  test('W4A8_ISA picks the default ISA; an unavailable one is reported and ignored', () => {
    const addon = process.env.W4A8_ADDON ?? path.resolve(__dirname, '..', '..', 'build', 'addon', 'Release', 'w4a8.node');
    const probe = (isa: string) => {
      const r = spawnSync(process.execPath, ['-e', `const b = require(${JSON.stringify(addon)}); console.log(JSON.stringify([b.cpuDefaultIsa(), b.cpuIsaOverrideIgnored()]))`],
        { env: { ...process.env, W4A8_ISA: isa }, encoding: 'utf8' });
      return JSON.parse(r.stdout) as [string, boolean];
    };
    const isas = CPU_ISAS.filter((i) => !cpuIsaUnavailableReason(i));
    for (const isa of isas) expect(probe(isa)).toEqual([isa, false]);
    const missing = CPU_ISAS.find((i) => cpuIsaUnavailableReason(i));
    if (missing) {
      const [chosen, ignored] = probe(missing);
      expect(ignored).toBe(true);
      expect(chosen).toBe(isas[isas.length - 1]);
    } else {
      console.log('kernels_cpu: every ISA is available here, so the ignored-override case is not exercised');
    }
  });
});
