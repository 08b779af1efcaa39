// Element-wise math on per-channel vectors (AWQ's 1/s, a norm weight divided by s). The addon has
// no element-wise kernels, and element loops do not belong in TypeScript, so these run as
// one-node graphs in ONNX Runtime's C++ kernels (sessions cached by length).
import * as ort from 'onnxruntime-node';
import { makeModel, makeNode, makeValueInfo } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import { modelBytes } from '../onnx/model';

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function session(op: 'Div' | 'Reciprocal', n: number): Promise<ort.InferenceSession> {
  const key = `${op}:${n}`;
  let s = sessions.get(key);
  if (s) return s;
  const inputs = op === 'Div' ? ['a', 'b'] : ['a'];
  const model = makeModel(
    {
      name: `vector_${op}`,
      nodes: [makeNode(op, inputs, ['y'])],
      inputs: inputs.map((name) => makeValueInfo(name, DataType.FLOAT, [n])),
      outputs: [makeValueInfo('y', DataType.FLOAT, [n])],
      initializers: [],
    },
    [{ domain: '', version: 17 }],
  );
  s = ort.InferenceSession.create(modelBytes(model), { executionProviders: ['cpu'], logSeverityLevel: 3 });
  sessions.set(key, s);
  return s;
}

/** a / b element-wise (fp32, correctly rounded). */
export async function divideVectors(a: Float32Array, b: Float32Array): Promise<Float32Array> {
  if (a.length !== b.length) throw new RangeError(`divideVectors: lengths differ (${a.length} vs ${b.length})`);
  const s = await session('Div', a.length);
  const out = await s.run({ a: new ort.Tensor('float32', a, [a.length]), b: new ort.Tensor('float32', b, [b.length]) });
  return out.y.data as Float32Array;
}

/** 1 / a element-wise (AWQ scales are clamped >= 1e-4 natively, so never a division by zero). */
export async function reciprocal(a: Float32Array): Promise<Float32Array> {
  const s = await session('Reciprocal', a.length);
  const out = await s.run({ a: new ort.Tensor('float32', a, [a.length]) });
  return out.y.data as Float32Array;
}

/** Releases the cached sessions. */
export async function releaseVectorSessions(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const s of all) await (await s).release();
}
