// The native transpose and RoPE tables behind the importer, through their validating wrappers.
import { ropeTables, transposeMatrix } from '../../lib/native/tensor_layout';

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 30 - 1;
  });
}

describe('transposeMatrix', () => {
  test.each([
    [1, 1],
    [1, 9],
    [9, 1],
    [31, 33],
    [64, 48],
    [130, 67],
  ])('[%i, %i] -> [cols, rows]', async (rows, cols) => {
    const src = randomMatrix(rows * cols, rows * 1000 + cols);
    const dst = await transposeMatrix(src, rows, cols);
    expect(dst.length).toBe(src.length);
    let bad = 0;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (dst[c * rows + r] !== src[r * cols + c]) bad++;
    expect(bad).toBe(0);
    // The input is left as it was.
    expect(src).toEqual(randomMatrix(rows * cols, rows * 1000 + cols));
  });

  test('rejects wrong arguments with messages that name them', async () => {
    await expect(transposeMatrix(new Float32Array(6), 2, 4)).rejects.toThrow('Expected src of length 8 (rows=2 x cols=4) but received 6');
    await expect(transposeMatrix(new Float32Array(6), 2.5, 4)).rejects.toThrow(TypeError);
    await expect(transposeMatrix(new Float32Array(6), -2, -3)).rejects.toThrow(RangeError);
    await expect(transposeMatrix(new Float64Array(6) as unknown as Float32Array, 2, 3)).rejects.toThrow(/Float32Array/);
    expect((await transposeMatrix(new Float32Array(0), 0, 5)).length).toBe(0);
  });
});

describe('ropeTables', () => {
  test('equal cos/sin(pos / 10000^(2i/headSize)) as run.c computes them', async () => {
    const seqLen = 300;
    const headSize = 64;
    const { cos, sin } = await ropeTables(seqLen, headSize);
    expect(cos.length).toBe(seqLen * 32);
    let maxErr = 0;
    for (let pos = 0; pos < seqLen; pos++) {
      for (let i = 0; i < 32; i++) {
        const angle = pos / Math.pow(10000, (2 * i) / headSize);
        maxErr = Math.max(maxErr, Math.abs(cos[pos * 32 + i] - Math.cos(angle)), Math.abs(sin[pos * 32 + i] - Math.sin(angle)));
      }
    }
    // fp32 angles of up to ~300 rad carry ~1e-5 absolute error, as in run.c itself.
    expect(maxErr).toBeLessThan(1e-4);
    expect(cos[0]).toBe(1);
    expect(sin[0]).toBe(0);
  });

  test('rejects odd head sizes and bad lengths', async () => {
    await expect(ropeTables(8, 7)).rejects.toThrow(/even headSize/);
    await expect(ropeTables(0, 8)).rejects.toThrow(RangeError);
    await expect(ropeTables(8, 8, -1)).rejects.toThrow(/theta/);
  });
});
