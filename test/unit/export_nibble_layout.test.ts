// The ORT-run nibble transpose used by the QDQ export, against a direct element-by-element reference.
import { releaseNibbleSessions, transposeNibbles } from '../../lib/export/nibble_layout';

function nibbleAt(p: Uint8Array, i: number): number {
  return i % 2 === 0 ? p[i >> 1] & 15 : p[i >> 1] >> 4;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

afterAll(() => releaseNibbleSessions());

describe('transposeNibbles', () => {
  it.each([
    [4, 8, 16, false],
    [3, 8, 13, false],
    [5, 2, 3, true],
    [7, 16, 32, true],
  ])('rows %i, packedCols %i, validCols %i, flip %s', async (rows, packedCols, validCols, flip) => {
    const packed = randomBytes(rows * packedCols, rows * 31 + validCols);
    const out = await transposeNibbles(packed, rows, packedCols, validCols, flip);
    expect(out.length).toBe(Math.ceil((rows * validCols) / 2));
    for (let c = 0; c < validCols; c++) {
      for (let r = 0; r < rows; r++) {
        const src = nibbleAt(packed, r * packedCols * 2 + c);
        const expected = flip ? src ^ 8 : src;
        expect(nibbleAt(out, c * rows + r)).toBe(expected);
      }
    }
    if ((rows * validCols) % 2 === 1) expect(out[out.length - 1] >> 4).toBe(flip ? 8 : 0);
  });
});
