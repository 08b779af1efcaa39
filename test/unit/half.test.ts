import { native } from '../../lib/native/binding';

describe('fp16 / bf16 conversion (native)', () => {
  it('round-trips representable values and rounds ties to even', () => {
    const values = new Float32Array([0, -0, 1, -2.5, 65504, 2 ** -14, 2 ** -24, 1 + 2 ** -11, 1 + 3 * 2 ** -11]);
    const half = new Uint16Array(values.length);
    native().float32ToFloat16(values, half);
    const back = new Float32Array(values.length);
    native().float16ToFloat32(half, back);
    expect(Array.from(back)).toEqual([0, -0, 1, -2.5, 65504, 2 ** -14, 2 ** -24, 1, 1 + 4 * 2 ** -11]);
  });

  it('converts bfloat16 by truncating the low 16 bits with rounding', () => {
    const values = new Float32Array([1, 3.140625, -1e30]);
    const bf = new Uint16Array(3);
    native().float32ToBfloat16(values, bf);
    const back = new Float32Array(3);
    native().bfloat16ToFloat32(bf, back);
    expect(back[0]).toBe(1);
    expect(back[1]).toBe(3.140625);
    expect(Math.abs(back[2] / -1e30 - 1)).toBeLessThan(1 / 128);
  });

  it('rejects a wrong element type with a TypeError', () => {
    expect(() => native().float16ToFloat32(new Float32Array(2) as unknown as Uint16Array, new Float32Array(2))).toThrow(TypeError);
    expect(() => native().float16ToFloat32(new Uint16Array(3), new Float32Array(2))).toThrow(RangeError);
  });
});
