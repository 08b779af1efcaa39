// The QDQ export stores int4 weights as an ONNX INT4/UINT4 tensor [K, N] (4-bit elements packed
// along the flattened tensor, low nibble first), while the quantizer's canonical codes are
// [N][blocks][group/2]. Re-ordering 4-bit elements is an element loop; it runs inside ONNX
// Runtime's C++ kernels through a small graph (unpack -> slice -> transpose -> repack), so no
// tensor element is touched in JavaScript.
import * as ort from 'onnxruntime-node';
import { toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import { makeModel, makeNode, makeValueInfo } from '../onnx/build';
import { DataType } from '../onnx/dtype';
import { makeTensor } from '../onnx/tensor';

function u8(name: string, dims: number[], values: number[]): ReturnType<typeof makeTensor> {
  return makeTensor(name, DataType.UINT8, dims, Uint8Array.from(values));
}
function i64(name: string, values: number[]): ReturnType<typeof makeTensor> {
  return makeTensor(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));
}

const cache = new Map<string, Promise<ort.InferenceSession>>();

/** A session for one (rows, packedCols, validCols, flipSign) shape. */
function sessionFor(rows: number, packedCols: number, validCols: number, flipSign: boolean): Promise<ort.InferenceSession> {
  const key = `${rows}x${packedCols}x${validCols}x${flipSign}`;
  let s = cache.get(key);
  if (s) return s;
  const total = rows * validCols;
  const odd = total % 2 === 1;
  const nodes = [
    makeNode('BitwiseAnd', ['packed', 'mask'], ['lo']),
    makeNode('BitShift', ['packed', 'four'], ['hi'], { direction: 'RIGHT' }),
    makeNode('Unsqueeze', ['lo', 'ax2'], ['lo3']),
    makeNode('Unsqueeze', ['hi', 'ax2'], ['hi3']),
    makeNode('Concat', ['lo3', 'hi3'], ['pairs_in'], { axis: 2 }),
    makeNode('Reshape', ['pairs_in', 'shape_unpacked'], ['unpacked']),
    makeNode('Slice', ['unpacked', 'start0', 'end_valid', 'ax1'], ['valid']),
    makeNode('Transpose', ['valid'], ['transposed'], { perm: [1, 0] }),
    makeNode('Reshape', ['transposed', 'flat'], odd ? ['flat_odd'] : ['flat_even']),
  ];
  const inits = [
    u8('mask', [], [15]),
    u8('four', [], [4]),
    i64('ax2', [2]),
    i64('ax1', [1]),
    i64('shape_unpacked', [rows, packedCols * 2]),
    i64('start0', [0]),
    i64('end_valid', [validCols]),
    i64('flat', [-1]),
    i64('pair_shape', [-1, 2]),
    makeTensor('idx0', DataType.INT64, [], BigInt64Array.of(0n)),
    makeTensor('idx1', DataType.INT64, [], BigInt64Array.of(1n)),
  ];
  if (odd) {
    // 4-bit tensors with an odd element count end in half a byte: pad the last nibble with 0.
    inits.push(u8('pad', [1], [0]));
    nodes.push(makeNode('Concat', ['flat_odd', 'pad'], ['flat_even'], { axis: 0 }));
  }
  nodes.push(
    makeNode('Reshape', ['flat_even', 'pair_shape'], ['pairs']),
    makeNode('Gather', ['pairs', 'idx0'], ['even'], { axis: 1 }),
    makeNode('Gather', ['pairs', 'idx1'], ['oddv'], { axis: 1 }),
    makeNode('BitShift', ['oddv', 'four'], ['odd_hi'], { direction: 'LEFT' }),
    makeNode('BitwiseOr', ['even', 'odd_hi'], flipSign ? ['unsigned'] : ['out']),
  );
  if (flipSign) {
    // Offset-8 codes to two's complement int4: q - 8 == q XOR 8 in four bits.
    inits.push(u8('flip', [], [0x88]));
    nodes.push(makeNode('BitwiseXor', ['unsigned', 'flip'], ['out']));
  }
  const model = makeModel(
    {
      name: 'nibble_transpose',
      nodes,
      inputs: [makeValueInfo('packed', DataType.UINT8, [rows, packedCols])],
      outputs: [makeValueInfo('out', DataType.UINT8, [Math.ceil(total / 2)])],
      initializers: inits,
    },
    [{ domain: '', version: 18 }],
  );
  s = ort.InferenceSession.create(toBinary(ModelProtoSchema, model.proto), { executionProviders: ['cpu'], logSeverityLevel: 3 });
  cache.set(key, s);
  return s;
}

/**
 * `packed` holds a [rows][packedCols*2] matrix of 4-bit values (two per byte, low nibble first);
 * returns the first `validCols` columns transposed, [validCols][rows], packed along the flattened
 * result. `flipSign` turns offset-8 codes into two's complement INT4.
 */
export async function transposeNibbles(packed: Uint8Array, rows: number, packedCols: number, validCols: number, flipSign = false): Promise<Uint8Array> {
  if (packed.length !== rows * packedCols) throw new RangeError(`transposeNibbles: expected ${rows * packedCols} bytes, got ${packed.length}`);
  if (validCols > packedCols * 2) throw new RangeError(`transposeNibbles: validCols ${validCols} exceeds the ${packedCols * 2} packed columns`);
  const session = await sessionFor(rows, packedCols, validCols, flipSign);
  const out = await session.run({ packed: new ort.Tensor('uint8', packed, [rows, packedCols]) });
  return out.out.data as Uint8Array;
}

/** Release the cached sessions (tests, end of a sweep). */
export async function releaseNibbleSessions(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const s of all) await (await s).release();
}
