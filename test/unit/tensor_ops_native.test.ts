// The addon's nibble transpose against a plain reading of the layout it implements, on random odd
// shapes, and its element-wise division and reciprocal against plain JS arithmetic (a float64
// quotient of two float32 values rounds to the correctly rounded float32 quotient). Seeded; the
// seed is printed.
import { divideVectors, reciprocal, transposeNibbles } from '../../lib/native/tensor_layout';
import { xorshift32 } from '../helpers/seeded';

/**
 * The layout, element by element: `packed` is [rows][packedCols] bytes of two 4-bit values (low
 * nibble first); the first `validCols` values of each row, transposed to [validCols][rows] and
 * flattened, are packed two per byte (low nibble first) as ONNX INT4/UINT4 tensors are; an odd count
 * leaves a 0 padding nibble; `flipSign` turns offset-8 codes into two's complement (q XOR 8).
 */
function transposeNibblesReference(packed: Uint8Array, rows: number, packedCols: number, validCols: number, flipSign: boolean): Uint8Array {
  const out = new Uint8Array(Math.ceil((rows * validCols) / 2));
  for (let c = 0; c < validCols; c++) {
    for (let r = 0; r < rows; r++) {
      const byte = packed[r * packedCols + (c >> 1)];
      const value = ((c & 1 ? byte >> 4 : byte) & 0x0f) ^ (flipSign ? 8 : 0);
      const i = c * rows + r;
      out[i >> 1] |= i & 1 ? value << 4 : value;
    }
  }
  return out;
}

const SEED = Number(process.env.W4A8_TEST_SEED ?? 20261205);

// eslint-disable-next-line no-console
console.log(`tensor_ops_native: seed ${SEED} (set W4A8_TEST_SEED to reproduce another)`);

describe('transposeNibbles (native) vs the element-by-element reference', () => {
  const next = xorshift32(SEED);
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [3, 2, 3], [7, 5, 9], [65, 33, 65], [129, 40, 80]];
  for (let i = 0; i < 10; i++) {
    const rows = 1 + (next() % 200);
    const packedCols = 1 + (next() % 80);
    const validCols = 2 * packedCols - (next() % 2) - (i % 3 === 0 ? Math.floor(packedCols / 2) : 0);
    shapes.push([rows, packedCols, Math.max(1, validCols)]);
  }
  it.each(shapes)('rows %i, packedCols %i, validCols %i', async (rows, packedCols, validCols) => {
    const packed = new Uint8Array(rows * packedCols);
    for (let i = 0; i < packed.length; i++) packed[i] = next() & 0xff;
    for (const flip of [false, true]) {
      const got = await transposeNibbles(packed, rows, packedCols, validCols, flip);
      const want = transposeNibblesReference(packed, rows, packedCols, validCols, flip);
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      if ((rows * validCols) % 2 === 1) expect(got[got.length - 1] >> 4).toBe(0); // the padding nibble
      // One element checked by hand: (row 0, column 0) is the low nibble of byte 0.
      expect(got[0] & 0x0f).toBe((packed[0] & 0x0f) ^ (flip ? 8 : 0));
    }
  });

  it('refuses wrong arguments with the value and the fix', async () => {
    await expect(transposeNibbles(new Uint8Array(5), 2, 3, 6)).rejects.toThrow(/Expected packed of length 6/);
    await expect(transposeNibbles(new Uint8Array(6), 2, 3, 7)).rejects.toThrow(/Expected validCols in 0\.\.6 but received 7/);
    await expect(transposeNibbles(new Int8Array(6) as unknown as Uint8Array, 2, 3, 6)).rejects.toThrow(TypeError);
    expect((await transposeNibbles(new Uint8Array(0), 0, 3, 6)).length).toBe(0);
  });
});

describe('divideVectors / reciprocal (native) vs JS arithmetic', () => {
  it('agree bit for bit on random values and specials', async () => {
    const next = xorshift32(SEED ^ 0xd1d);
    const n = 100_003;
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    const ua = new Uint32Array(a.buffer);
    const ub = new Uint32Array(b.buffer);
    for (let i = 0; i < n; i++) {
      if (i % 4 === 0) {
        ua[i] = next(); // any bit pattern: NaN, Inf, denormals, zeros
        ub[i] = next();
      } else {
        a[i] = (next() / 4294967296 - 0.5) * 2 ** ((next() % 60) - 30);
        b[i] = (next() / 4294967296 - 0.5) * 2 ** ((next() % 60) - 30);
      }
    }
    a.set([0, -1, Infinity, 1, -0], 1);
    b.set([0, 0, Infinity, -0, 5], 1);
    const q = await divideVectors(a, b);
    const r = await reciprocal(a);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const wq = Math.fround(a[i] / b[i]);
      const wr = Math.fround(1 / a[i]);
      if (!(Object.is(q[i], wq) || (Number.isNaN(q[i]) && Number.isNaN(wq)))) bad++;
      if (!(Object.is(r[i], wr) || (Number.isNaN(r[i]) && Number.isNaN(wr)))) bad++;
    }
    expect(bad).toBe(0);
    expect(Object.is(q[4], -Infinity) && Object.is(r[5], -Infinity)).toBe(true);
  });

  it('refuses lengths that differ', async () => {
    await expect(divideVectors(new Float32Array(3), new Float32Array(4))).rejects.toThrow(/Expected b of length 3/);
    await expect(reciprocal([1, 2] as unknown as Float32Array)).rejects.toThrow(TypeError);
  });
});
