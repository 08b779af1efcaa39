// The native activation fake-quantization and the ONNX subgraph of the sim export (standard ops run
// by ONNX Runtime: Div, Round, Clip for int8; Cast to FLOAT8E4M3FN with saturate=1 for fp8) must
// agree bit for bit: the sim export's accuracy claims rest on it.
import * as ort from 'onnxruntime-node';
import { actQuantGraph } from '../../lib/export/act_quant_graph';
import { makeModel, makeValueInfo } from '../../lib/onnx/build';
import { DataType } from '../../lib/onnx/dtype';
import { serializeForOrt } from '../../lib/onnx/model';
import { fakeQuantActivations } from '../../lib/native/quant';

function activations(m: number, k: number): Float32Array {
  const x = new Float32Array(m * k);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const u = s / 4294967296 - 0.5;
    // Wide dynamic range: exercises fp8 subnormals, ties and saturation of the row maximum.
    x[i] = u * Math.pow(2, ((i * 7) % 23) - 11);
  }
  for (let i = 0; i < k; i++) x[3 * k + i] = 0; // an all-zero token
  x[5 * k + 2] = 1000; // an outlier token
  return x;
}

describe.each(['int8', 'fp8'] as const)('native %s fake-quant vs ONNX Runtime', (format) => {
  it('matches bit for bit', async () => {
    const m = 16;
    const k = 200;
    const opset = 21;
    const g = actQuantGraph('x', DataType.FLOAT, format, 'aq', opset);
    const model = makeModel(
      {
        name: 'act_quant',
        nodes: g.nodes,
        inputs: [makeValueInfo('x', DataType.FLOAT, [m, k])],
        outputs: [makeValueInfo(g.output, DataType.FLOAT, [m, k])],
        initializers: g.initializers,
      },
      [{ domain: '', version: opset }],
    );
    const session = await ort.InferenceSession.create(serializeForOrt(model).bytes);
    try {
      const x = activations(m, k);
      const out = await session.run({ x: new ort.Tensor('float32', x, [m, k]) });
      const fromOrt = out[g.output].data as Float32Array;
      const native = (await fakeQuantActivations(x, m, k, format)).values;
      let mismatches = 0;
      for (let i = 0; i < native.length; i++) if (!Object.is(native[i] + 0, fromOrt[i] + 0)) mismatches++;
      expect(mismatches).toBe(0);
    } finally {
      await session.release();
    }
  });
});
