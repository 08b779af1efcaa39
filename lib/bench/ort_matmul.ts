// One-node ONNX Runtime models for the CPU benchmark: com.microsoft.MatMulNBits on our canonical
// weights (its layout IS ours, formats.h) and a plain fp32 MatMul on the dequantized matrix.
import * as ort from 'onnxruntime-node';
import { makeModel, makeNode, makeValueInfo } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import { serializeForOrt } from '../onnx/model';
import { makeTensor } from '../onnx/tensor';
import { blocksPerRow, zeroPointBytes, type CanonicalWeight } from '../native/formats';

export interface OrtThreads {
  intraOpNumThreads: number;
  /** Intra-op threads spin between runs (ORT's default). Off unless asked: see below. */
  spinning?: boolean;
}

// Spinning is off by default: the benchmark holds hundreds of sessions (one per matrix), each with its
// own intra-op pool, and a spinning pool of the previous session steals the cores from the next one.
// Measured on the 2-vCPU machine, 4096x4096 bs128 acc4, M=1: 8 sessions in rotation 3.76 ms/run with
// spinning vs 0.60 without; even one hot session 1.37 vs 0.16 ms. So this choice favours ORT here.
// `bench cpu --ort-spinning on` measures the other setting (docs/BENCHMARKS.md has both).
function sessionOptions(t: OrtThreads): ort.InferenceSession.SessionOptions {
  return {
    extra: { session: { intra_op: { allow_spinning: t.spinning ? '1' : '0' } } },
    intraOpNumThreads: t.intraOpNumThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  };
}

/** Y[m][N] = A[m][K] * W^T with W as MatMulNBits (bits 4) at the given accuracy level. */
export async function createMatMulNBitsSession(w: CanonicalWeight, accuracyLevel: number, threads: OrtThreads): Promise<ort.InferenceSession> {
  if (w.format !== 'int4') throw new RangeError('MatMulNBits takes int4 weights only (ONNX Runtime has no fp4 CPU kernel)');
  const blocks = blocksPerRow(w.k, w.groupSize);
  const inits = [
    makeTensor('B', DataType.UINT8, [w.n, blocks, w.groupSize / 2], w.codes),
    makeTensor('scales', DataType.FLOAT, [w.n * blocks], w.scales),
  ];
  const inputs = ['A', 'B', 'scales'];
  if (w.zeroPoints) {
    inits.push(makeTensor('zero_points', DataType.UINT8, [zeroPointBytes(w.n, w.k, w.groupSize)], w.zeroPoints));
    inputs.push('zero_points');
  }
  const node = makeNode('MatMulNBits', inputs, ['Y'],
    { K: w.k, N: w.n, bits: 4, block_size: w.groupSize, accuracy_level: accuracyLevel }, { name: 'matmul', domain: 'com.microsoft' });
  const model = makeModel(
    { name: 'bench', nodes: [node], inputs: [makeValueInfo('A', DataType.FLOAT, ['m', w.k])], outputs: [makeValueInfo('Y', DataType.FLOAT, ['m', w.n])], initializers: inits },
    [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
  );
  return ort.InferenceSession.create(serializeForOrt(model).bytes, sessionOptions(threads));
}

/** Y[m][N] = A[m][K] * B[K][N], fp32. */
export async function createMatMulSession(bKN: Float32Array, k: number, n: number, threads: OrtThreads): Promise<ort.InferenceSession> {
  const model = makeModel(
    {
      name: 'bench',
      nodes: [makeNode('MatMul', ['A', 'B'], ['Y'], {}, { name: 'matmul' })],
      inputs: [makeValueInfo('A', DataType.FLOAT, ['m', k])],
      outputs: [makeValueInfo('Y', DataType.FLOAT, ['m', n])],
      initializers: [makeTensor('B', DataType.FLOAT, [k, n], bKN)],
    },
    [{ domain: '', version: 21 }],
  );
  return ort.InferenceSession.create(serializeForOrt(model).bytes, sessionOptions(threads));
}

/** Runs the session on x [m][K] and returns Y's data. */
export async function runMatMul(session: ort.InferenceSession, x: ort.Tensor): Promise<Float32Array> {
  const out = await session.run({ A: x });
  return out.Y.data as Float32Array;
}

/**
 * Runs the session on x writing Y into a preallocated tensor (onnxruntime-node 1.30 fills a fetched
 * Tensor's own buffer: checked by test/unit/kernels_bench.test.ts).
 */
export async function runMatMulInto(session: ort.InferenceSession, x: ort.Tensor, y: ort.Tensor): Promise<void> {
  await session.run({ A: x }, { Y: y });
}

export function inputTensor(x: Float32Array, m: number, k: number): ort.Tensor {
  return new ort.Tensor('float32', x, [m, k]);
}

/** A preallocated [m][n] fp32 output for runMatMulInto. */
export function outputTensor(m: number, n: number): ort.Tensor {
  return new ort.Tensor('float32', new Float32Array(m * n), [m, n]);
}
