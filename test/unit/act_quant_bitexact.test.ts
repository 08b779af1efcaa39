// One definition of per-token activation quantization (native/include/w4a8/act_quant_def.h): the
// sim export's ONNX subgraph (standard ops run by ONNX Runtime: Mul by qmax / amax, Round, Clip for
// int8; Cast to FLOAT8E4M3FN with saturate=1 for fp8) and the native fake quantizer (the kernels'
// numerics) must agree bit for bit, signed zeros included: the sim export's accuracy claims rest
// on it. 10^7 seeded random values in rows of an odd width, plus extremes: zero rows, values near
// +-FLT_MAX, denormals (inside a normal row, and rows whose amax is itself denormal), exact rounding
// ties x * inv = n + 0.5, and rows with one huge outlier.
import * as ort from 'onnxruntime-node';
import { actQuantGraph } from '../../lib/export/act_quant_graph';
import { makeModel, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { serializeForOrt } from '../../lib/onnx/model';
import { fakeQuantActivations } from '../../lib/native/quant';
import { xorshift32 } from '../helpers/seeded';

const K = 1021; // odd row width
const TOTAL = 10_000_000;
const BATCHES = 4; // ORT runs per format
const FLT_MAX = 3.4028234663852886e38;
const SEED = Number(process.env.W4A8_TEST_SEED ?? 20261205);

/**
 * Random rows: a per-row magnitude 2^[-40, 40]; most values uniform in (-mag, mag) (they land on
 * every int8 step, where x * inv and x / scale can round apart), one in eight shrunk by up to 2^-24
 * (fp8 subnormals).
 */
function randomRows(rows: number, next: () => number): Float32Array {
  const x = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    const mag = Math.pow(2, (next() % 81) - 40);
    for (let i = 0; i < K; i++) {
      const u = next() / 4294967296;
      const sign = next() & 1 ? -1 : 1;
      const shrink = (next() & 7) === 0 ? Math.pow(2, -(next() % 25)) : 1;
      x[r * K + i] = sign * mag * u * shrink;
    }
  }
  return x;
}

/** Hand-made extreme rows, each of width K. */
function extremeRows(next: () => number): Float32Array {
  const rows: Float32Array[] = [];
  const row = () => {
    const a = new Float32Array(K);
    rows.push(a);
    return a;
  };
  row(); // all +0
  row().fill(-0); // all -0
  // Near +-FLT_MAX, and FLT_MAX beside ordinary values.
  const big = row();
  for (let i = 0; i < K; i++) big[i] = (i & 1 ? -1 : 1) * FLT_MAX * (1 - (next() % 1000) / 1e4);
  const bigMixed = row();
  for (let i = 0; i < K; i++) bigMixed[i] = (next() / 4294967296 - 0.5) * 1e30;
  bigMixed[K >> 1] = -FLT_MAX;
  // Denormals inside a normal row, and rows whose amax is itself denormal (qmax / amax overflows).
  const denormInNormal = row();
  for (let i = 0; i < K; i++) denormInNormal[i] = (next() & 1 ? -1 : 1) * (next() % 1000) * 1.4e-45;
  denormInNormal[3] = 1.5;
  for (const amax of [1.4e-45, 1e-40, 1.1754942e-38]) {
    const d = row();
    for (let i = 0; i < K; i++) d[i] = (next() & 1 ? -1 : 1) * Math.fround(amax * (next() / 4294967296));
    d[7] = amax;
    d[8] = 0;
    d[9] = -0;
  }
  // Exact ties: with amax = qmax the inverse is 1, so x * inv = n + 0.5 exactly (int8 ties; for fp8,
  // the midpoints between neighbouring E4M3 values and their neighbours one ulp away).
  const tiesInt8 = row();
  for (let i = 0; i < K; i++) tiesInt8[i] = ((i % 254) - 127) + 0.5 * (i % 254 < 254 ? 1 : 0);
  tiesInt8[0] = 127;
  for (let i = 1; i < K; i++) tiesInt8[i] = Math.max(-127, Math.min(126.5, tiesInt8[i]));
  const tiesFp8 = row();
  const e4m3 = e4m3Values();
  for (let i = 0; i < K; i++) {
    const c = i % (e4m3.length - 1);
    const mid = Math.fround((e4m3[c] + e4m3[c + 1]) / 2);
    const wobble = i % 3 === 0 ? 0 : i % 3 === 1 ? 1 : -1;
    tiesFp8[i] = (i & 1 ? -1 : 1) * nextFloat(mid, wobble);
  }
  tiesFp8[0] = 448;
  // Ties at another scale: amax = 2 * qmax gives inv = 0.5 exactly, x = 2n + 1 -> n + 0.5.
  const ties2 = row();
  for (let i = 0; i < K; i++) ties2[i] = (i & 1 ? -1 : 1) * (2 * (i % 127) + 1);
  ties2[1] = 254;
  // One huge outlier among small values (most of the row rounds to zero).
  for (const outlier of [1e4, -3e7, 6e37]) {
    const o = row();
    for (let i = 0; i < K; i++) o[i] = (next() / 4294967296 - 0.5) * 2;
    o[next() % K] = outlier;
  }
  const out = new Float32Array(rows.length * K);
  rows.forEach((r, i) => out.set(r, i * K));
  return out;
}

/** The non-negative finite E4M3FN values in increasing order. */
function e4m3Values(): number[] {
  const v: number[] = [];
  for (let c = 0; c < 0x7f; c++) {
    const e = (c >> 3) & 15;
    const m = c & 7;
    v.push(e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7));
  }
  return v;
}

/** The float32 `steps` ulps away from x (towards +inf for steps > 0). */
function nextFloat(x: number, steps: number): number {
  const f = new Float32Array([x]);
  const u = new Int32Array(f.buffer);
  u[0] += x >= 0 ? steps : -steps;
  return f[0];
}

async function ortFakeQuant(session: ort.InferenceSession, output: string, x: Float32Array, rows: number): Promise<Float32Array> {
  const out = await session.run({ x: new ort.Tensor('float32', x, [rows, K]) });
  return out[output].data as Float32Array;
}

function mismatches(a: Float32Array, b: Float32Array): { count: number; first: string } {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let count = 0;
  let first = '';
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      if (count === 0) first = `index ${i} (row ${Math.floor(i / K)}): native ${a[i]} (0x${ua[i].toString(16)}), ORT ${b[i]} (0x${ub[i].toString(16)})`;
      count++;
    }
  }
  return { count, first };
}

// eslint-disable-next-line no-console
console.log(`act_quant_bitexact: seed ${SEED} (set W4A8_TEST_SEED to reproduce another), ${TOTAL} values, rows of ${K}`);

describe.each(['int8', 'fp8'] as const)('%s: native fake quantizer vs the sim export subgraph in ONNX Runtime', (format) => {
  let session: ort.InferenceSession;
  let output = '';

  beforeAll(async () => {
    const opset = 21;
    const g = actQuantGraph('x', DataType.FLOAT, format, 'aq', opset);
    output = g.output;
    const model = makeModel(
      {
        name: 'act_quant',
        nodes: g.nodes,
        inputs: [makeValueInfo('x', DataType.FLOAT, ['rows', K])],
        outputs: [makeValueInfo(g.output, DataType.FLOAT, ['rows', K])],
        initializers: g.initializers,
      },
      [{ domain: '', version: opset }],
    );
    session = await ort.InferenceSession.create(serializeForOrt(model).bytes);
  });
  afterAll(async () => {
    await session?.release();
  });

  it('agrees bit for bit on the extremes', async () => {
    const x = extremeRows(xorshift32(SEED ^ 0x5eed));
    const rows = x.length / K;
    const native = (await fakeQuantActivations(x, rows, K, format)).values;
    const fromOrt = await ortFakeQuant(session, output, x, rows);
    const bad = mismatches(native, fromOrt);
    expect(bad.first).toBe('');
    expect(bad.count).toBe(0);
    // The definition, spot-checked: zero rows stay +-0, no NaN anywhere, the row max maps to +-qmax * scale.
    for (let i = 0; i < native.length; i++) expect(Number.isNaN(native[i])).toBe(false);
    expect(Object.is(native[0], 0) && Object.is(native[K], -0)).toBe(true);
  });

  it(`agrees bit for bit on ${TOTAL} random values`, async () => {
    const next = xorshift32(SEED);
    const rowsTotal = Math.ceil(TOTAL / K);
    const perBatch = Math.ceil(rowsTotal / BATCHES);
    let checked = 0;
    for (let r0 = 0; r0 < rowsTotal; r0 += perBatch) {
      const rows = Math.min(perBatch, rowsTotal - r0);
      const x = randomRows(rows, next);
      const native = (await fakeQuantActivations(x, rows, K, format)).values;
      const fromOrt = await ortFakeQuant(session, output, x, rows);
      const bad = mismatches(native, fromOrt);
      expect(bad.first).toBe('');
      expect(bad.count).toBe(0);
      checked += x.length;
    }
    expect(checked).toBeGreaterThanOrEqual(TOTAL);
  });
});
