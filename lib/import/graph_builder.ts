// A small accumulator for hand-built ONNX graphs: each op gets a unique node name and output
// name, constants become initializers. The ONNX protobuf work stays in lib/onnx.
import type { NodeProto, TensorProto, ValueInfoProto } from 'onnx-buf';
import { makeNode, type AttrValue } from '../onnx/build';
import { makeTensor, DataType } from '../onnx/tensor';
import { transposeMatrix } from '../native/tensor_layout';
import { float32ToHalves } from '../native/tensor_codecs';

/** The float type of a built graph's weights, activations and float constants. */
export type BuiltFloatType = DataType.FLOAT | DataType.FLOAT16;

/** Takes an initializer's values as soon as it is made (e.g. to a side file) and returns the tensor to keep. */
export type WeightSink = (name: string, dims: number[], data: Float32Array) => TensorProto;
/** Takes the transpose of `src` ([rows, cols]) as initializer `name` [cols, rows], without making the transpose whole. */
export type TransposedWeightSink = (name: string, src: Float32Array, rows: number, cols: number) => Promise<TensorProto>;

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  private readonly used = new Set<string>();
  /** Constant initializers by name -> their value, so asking twice reuses the first one. */
  private readonly constants = new Map<string, string>();

  /** With a sink, fp32 initializers of `sinkMinElements` values or more go to it instead of memory. */
  constructor(
    private readonly sink?: WeightSink,
    private readonly sinkMinElements = 256,
    private readonly transposedSink?: TransposedWeightSink,
    /** FLOAT16 narrows every float initializer (natively, round to nearest even); the sinks do it for theirs. */
    readonly floatType: BuiltFloatType = DataType.FLOAT,
  ) {}

  /** An in-memory float initializer of the graph's float type. */
  private floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
    return this.floatType === DataType.FLOAT16 ? makeTensor(name, DataType.FLOAT16, dims, float32ToHalves(data, 'float16')) : makeTensor(name, DataType.FLOAT, dims, data);
  }

  /**
   * Add `opType` with `inputs`; the node is named `${scope}/${opType}` (suffixed when repeated)
   * and its outputs `${nodeName}_output_${i}` unless `outputs` names them ('' skips an optional one).
   */
  op(scope: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs?: string[] | number, domain?: string): string[] {
    const name = this.unique(`${scope}/${opType}`);
    const outs = Array.isArray(outputs) ? outputs : Array.from({ length: outputs ?? 1 }, (_, i) => `${name}_output_${i}`);
    this.nodes.push(makeNode(opType, inputs, outs, attrs, domain ? { name, domain } : { name }));
    return outs;
  }

  /** `op` for the common one-output case. */
  op1(scope: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    return this.op(scope, opType, inputs, attrs, output ? [output] : 1)[0];
  }

  /** A float initializer from fp32 values (data copied, or handed to the sink). */
  addFloat(name: string, dims: number[], data: Float32Array): string {
    const toSink = this.sink !== undefined && data.length >= this.sinkMinElements;
    this.initializers.push(toSink ? this.sink!(name, dims, data) : this.floatTensor(name, dims, data));
    return name;
  }

  /** A float initializer holding the transpose of `src` ([rows, cols] -> [cols, rows]); streamed when a transposed sink is set. */
  async addFloatTransposed(name: string, src: Float32Array, rows: number, cols: number): Promise<string> {
    if (this.transposedSink && src.length >= this.sinkMinElements) this.initializers.push(await this.transposedSink(name, src, rows, cols));
    else this.addFloat(name, [cols, rows], await transposeMatrix(src, rows, cols));
    return name;
  }

  /** An int64 constant initializer; `dims` [] makes a scalar. Repeated calls with one name share it. */
  addInt64(name: string, values: number[], dims: number[] = [values.length]): string {
    if (this.reuse(name, `int64 [${dims.join(',')}] ${values.join(',')}`)) return name;
    this.initializers.push(makeTensor(name, DataType.INT64, dims, BigInt64Array.from(values.map(BigInt))));
    return name;
  }

  /** A float scalar constant of the graph's float type. Repeated calls with one name share it. */
  addScalar(name: string, value: number): string {
    if (this.reuse(name, `float ${value}`)) return name;
    this.initializers.push(this.floatTensor(name, [], Float32Array.of(value)));
    return name;
  }

  private reuse(name: string, key: string): boolean {
    const seen = this.constants.get(name);
    if (seen === undefined) {
      this.constants.set(name, key);
      return false;
    }
    if (seen !== key) throw new Error(`GraphBuilder: constant ${name} redefined (${seen} vs ${key})`);
    return true;
  }

  private unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}
