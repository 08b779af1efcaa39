// lib/export/adapter_slots.ts without a session: the fused form of an adapter delta (its Kronecker
// sum in the MatMul orientation W4A8MatMul reads) against the delta W the adapter form defines,
// built element by element here; and the refusals of shapes a slot cannot take.
import type { AdapterDelta } from '../../lib/adapter/types';
import { adapterFeeds, attachFusedFactors, exposeAdapterInputs, fusedFactorsFromDelta, w4a8MatMulNodes } from '../../lib/export/adapter_slots';
import { makeModel, makeNode, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { xorshift32 } from '../helpers/seeded';

const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
const gen = xorshift32(seed);
const rand = (count: number) => Float32Array.from({ length: count }, () => gen() / 2 ** 31 - 1);

describe('fusedFactorsFromDelta', () => {
  beforeAll(() => console.log(`adapter_slots seed ${seed}`));

  it('gives kron_a, kron_b whose Kronecker sum is delta W transposed (scale included)', async () => {
    const [n1, k1, n2, k2, terms, scale] = [2, 3, 4, 5, 3, 0.75];
    const av = Array.from({ length: terms }, () => rand(n1 * k1)), bv = Array.from({ length: terms }, () => rand(n2 * k2));
    const delta: AdapterDelta = {
      module: 'model.layers.0.mlp.up_proj', outFeatures: n1 * n2, inFeatures: k1 * k2, scale,
      terms: av.map((values, i) => ({
        a: { kind: 'dense' as const, rows: n1, cols: k1, values },
        b: { kind: 'dense' as const, rows: n2, cols: k2, values: bv[i] },
      })),
    };
    const f = await fusedFactorsFromDelta(delta);
    expect(f.kron).toMatchObject({ terms, k1, n1, k2, n2 });
    const { a, b } = f.kron!;
    for (let out = 0; out < n1 * n2; out++) {
      for (let inp = 0; inp < k1 * k2; inp++) {
        const [p, q, r, s] = [Math.floor(out / n2), out % n2, Math.floor(inp / k2), inp % k2];
        let want = 0, got = 0;
        for (let i = 0; i < terms; i++) {
          want += scale * av[i][p * k1 + r] * bv[i][q * k2 + s];
          got += a[(i * k1 + r) * n1 + p] * b[(i * k2 + s) * n2 + q];
        }
        expect(Math.abs(got - want)).toBeLessThan(1e-6 * (1 + Math.abs(want)));
      }
    }
  });

  it('multiplies out a factor given as a product (PEFT w1_a @ w1_b), scale included', async () => {
    const [n1, k1, n2, k2, r1, r2, scale] = [3, 5, 4, 2, 2, 3, 1.5];
    const la = rand(n1 * r1), ra = rand(r1 * k1), lb = rand(n2 * r2), rb = rand(r2 * k2);
    const delta: AdapterDelta = {
      module: 'model.layers.0.mlp.down_proj', outFeatures: n1 * n2, inFeatures: k1 * k2, scale,
      terms: [{ a: { kind: 'product', rows: n1, cols: k1, rank: r1, left: la, right: ra }, b: { kind: 'product', rows: n2, cols: k2, rank: r2, left: lb, right: rb } }],
    };
    const f = await fusedFactorsFromDelta(delta);
    expect(f.kron).toMatchObject({ terms: 1, k1, n1, k2, n2 });
    const prod = (l: Float32Array, rr: Float32Array, rank: number, cols: number, i: number, j: number) => {
      let v = 0;
      for (let t = 0; t < rank; t++) v += l[i * rank + t] * rr[t * cols + j];
      return v;
    };
    for (let p = 0; p < n1; p++) for (let r = 0; r < k1; r++) {
      expect(Math.abs(f.kron!.a[r * n1 + p] - scale * prod(la, ra, r1, k1, p, r))).toBeLessThan(1e-6);
    }
    for (let q = 0; q < n2; q++) for (let s = 0; s < k2; s++) {
      expect(Math.abs(f.kron!.b[s * n2 + q] - prod(lb, rb, r2, k2, q, s))).toBeLessThan(1e-6);
    }
  });

  it('refuses terms of different shapes, naming the module', async () => {
    const dense = (rows: number, cols: number) => ({ kind: 'dense' as const, rows, cols, values: rand(rows * cols) });
    const mixed: AdapterDelta = { module: 'm.k_proj', outFeatures: 4, inFeatures: 4, scale: 1, terms: [{ a: dense(2, 2), b: dense(2, 2) }, { a: dense(1, 1), b: dense(4, 4) }] };
    await expect(fusedFactorsFromDelta(mixed)).rejects.toThrow(/m\.k_proj.*term 1/);
  });
});

describe('exposeAdapterInputs / adapterFeeds', () => {
  it('declares the factors as inputs and refuses feeds of another rank or shape', async () => {
    const node = makeNode('W4A8MatMul', ['A', 'codes', 'scales'], ['Y'], { K: 32, N: 6, bits: 4, block_size: 32 }, { name: 'layer', domain: 'com.w4a8' });
    const model = makeModel({ name: 'g', nodes: [node], inputs: [makeValueInfo('A', DataType.FLOAT, ['rows', 32])], outputs: [makeValueInfo('Y', DataType.FLOAT, ['rows', 6])], initializers: [] },
      [{ domain: '', version: 17 }, { domain: 'com.w4a8', version: 1 }]);
    attachFusedFactors(model, w4a8MatMulNodes(model)[0], { lowRank: { rank: 2, u: rand(64), v: rand(12) }, kron: { terms: 1, k1: 4, n1: 2, k2: 8, n2: 3, a: rand(8), b: rand(24) } }, 'layer/adapter');
    const slots = exposeAdapterInputs(model);
    expect(slots).toHaveLength(1);
    expect(model.proto.graph!.input.map((v) => v.name)).toEqual(['A', 'layer/adapter_lora_u', 'layer/adapter_lora_v', 'layer/adapter_kron_a', 'layer/adapter_kron_b']);
    const feeds = adapterFeeds(slots, new Map([['layer', { lowRank: { rank: 2, u: rand(64), v: rand(12) } }]]));
    expect(Object.keys(feeds)).toEqual(['layer/adapter_lora_u', 'layer/adapter_lora_v']);
    expect(feeds['layer/adapter_lora_u']).toMatchObject({ type: 'float16', dims: [32, 2] });
    expect(() => adapterFeeds(slots, new Map([['layer', { lowRank: { rank: 3, u: rand(96), v: rand(18) } }]]))).toThrow(/rank 3.*takes rank 2/);
    expect(() => adapterFeeds(slots, new Map([['layer', { kron: { terms: 2, k1: 4, n1: 2, k2: 8, n2: 3, a: rand(16), b: rand(48) } }]]))).toThrow(/takes \[1,4,2\]/);
    expect(() => adapterFeeds(slots, new Map([['other', {}]]))).toThrow(/"other"/);
  });
});
