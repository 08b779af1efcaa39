// Per-operator rules ONNX Runtime applies at load (its schema check and type inference), for the
// default-domain ops LLM graphs and our exports use: input and output counts (by opset where they
// changed), element types an input accepts, inputs that must share one type, required attributes,
// and the rank an initializer input must have. Only what ORT certainly refuses is a fault: an op
// outside this table is checked for its name only, a value whose type is unknown here is not
// checked, and type sets are the union over opset versions. Used by graph_check.ts.
import type { NodeProto } from 'onnx-buf';
import { DataType } from './dtype';

type Arity = readonly [min: number, max: number];
const MANY = Number.POSITIVE_INFINITY;

const FLOATS = [DataType.FLOAT16, DataType.FLOAT, DataType.DOUBLE, DataType.BFLOAT16] as const;
const INTEGERS = [DataType.UINT8, DataType.INT8, DataType.UINT16, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT32, DataType.UINT64] as const;
const NUMERIC: readonly DataType[] = [...FLOATS, ...INTEGERS];
/** MatMul and Gemm: no 8- and 16-bit integers (ONNX defines those for MatMulInteger only). */
const MATMUL: readonly DataType[] = [...FLOATS, DataType.INT32, DataType.INT64, DataType.UINT32, DataType.UINT64];
const INDEX: readonly DataType[] = [DataType.INT32, DataType.INT64];
const INT64: readonly DataType[] = [DataType.INT64];
const BOOL: readonly DataType[] = [DataType.BOOL];

export interface OpRule {
  /** Input count (empty names included, as ORT counts them), per opset where it changed. */
  inputs: Arity | ((opset: number) => Arity);
  /** Output count; [1, 1] when absent. */
  outputs?: Arity;
  /** The type variable of each input position; the last one repeats for variadic inputs. */
  typeVars?: readonly string[];
  /** The element types a type variable accepts (absent: any). */
  allowed?: Record<string, readonly DataType[]>;
  /** The element type of output 0 (every output for Split): a type variable, a fixed type, or the `to` attribute. */
  output?: string | DataType | 'to';
  /** Initializer inputs: position -> [min, max] rank. */
  ranks?: Record<number, Arity>;
  required?: readonly string[];
}

const unary = (allowed?: readonly DataType[]): OpRule => ({ inputs: [1, 1], typeVars: ['T'], allowed: allowed ? { T: allowed } : undefined, output: 'T' });
const binary = (allowed: readonly DataType[]): OpRule => ({ inputs: [2, 2], typeVars: ['T', 'T'], allowed: { T: allowed }, output: 'T' });
const compare = (allowed?: readonly DataType[]): OpRule => ({ inputs: [2, 2], typeVars: ['T', 'T'], allowed: allowed ? { T: allowed } : undefined, output: DataType.BOOL });
const variadic = (allowed: readonly DataType[]): OpRule => ({ inputs: [1, MANY], typeVars: ['T'], allowed: { T: allowed }, output: 'T' });
/** Reductions took `axes` as an input from opset 18 (ReduceSum from 13). */
const reduce = (since: number): OpRule => ({ inputs: (v) => (v >= since ? [1, 2] : [1, 1]), typeVars: ['T', 'A'], allowed: { T: NUMERIC, A: INT64 }, output: 'T' });

export const OP_RULES: Record<string, OpRule> = {
  MatMul: { inputs: [2, 2], typeVars: ['T', 'T'], allowed: { T: MATMUL }, output: 'T' },
  Gemm: { inputs: (v) => (v >= 11 ? [2, 3] : [3, 3]), typeVars: ['T', 'T', 'T'], allowed: { T: MATMUL }, output: 'T' },
  // The weight is (M, C/group, k1, ...): a convolution has at least one spatial axis.
  Conv: { inputs: [2, 3], typeVars: ['T', 'T', 'T'], allowed: { T: FLOATS }, output: 'T', ranks: { 1: [3, MANY] } },
  MatMulInteger: { inputs: [2, 4], typeVars: ['T1', 'T2', 'T1', 'T2'], allowed: { T1: [DataType.INT8, DataType.UINT8], T2: [DataType.INT8, DataType.UINT8] }, output: DataType.INT32 },
  Add: binary(NUMERIC),
  Sub: binary(NUMERIC),
  Mul: binary(NUMERIC),
  Div: binary(NUMERIC),
  Mod: binary(NUMERIC),
  Pow: { inputs: [2, 2], typeVars: ['T', 'T1'], allowed: { T: NUMERIC, T1: NUMERIC }, output: 'T' },
  Gather: { inputs: [2, 2], typeVars: ['T', 'I'], allowed: { I: INDEX }, output: 'T', ranks: { 0: [1, MANY] } },
  GatherElements: { inputs: [2, 2], typeVars: ['T', 'I'], allowed: { I: INDEX }, output: 'T', ranks: { 0: [1, MANY] } },
  GatherND: { inputs: [2, 2], typeVars: ['T', 'I'], allowed: { I: INT64 }, output: 'T' },
  ScatterND: { inputs: [3, 3], typeVars: ['T', 'I', 'T'], allowed: { I: INT64 }, output: 'T' },
  ScatterElements: { inputs: [3, 3], typeVars: ['T', 'I', 'T'], allowed: { I: INDEX }, output: 'T' },
  Reshape: { inputs: [2, 2], typeVars: ['T', 'S'], allowed: { S: INT64 }, output: 'T' },
  Expand: { inputs: [2, 2], typeVars: ['T', 'S'], allowed: { S: INT64 }, output: 'T' },
  Tile: { inputs: [2, 2], typeVars: ['T', 'S'], allowed: { S: INT64 }, output: 'T' },
  ConstantOfShape: { inputs: [1, 1], typeVars: ['S'], allowed: { S: INT64 } },
  Constant: { inputs: [0, 0] },
  Transpose: unary(),
  Identity: unary(),
  Flatten: unary(),
  Softmax: unary(FLOATS),
  LogSoftmax: unary(FLOATS),
  Tanh: unary(FLOATS),
  Sigmoid: unary(FLOATS),
  Sqrt: unary(FLOATS),
  Reciprocal: unary(FLOATS),
  Exp: unary(FLOATS),
  Log: unary(FLOATS),
  Sin: unary(FLOATS),
  Cos: unary(FLOATS),
  Round: unary(FLOATS),
  Floor: unary(FLOATS),
  Ceil: unary(FLOATS),
  Softplus: unary(FLOATS),
  Gelu: unary(FLOATS),
  Erf: unary(NUMERIC),
  Relu: unary(NUMERIC),
  Neg: unary(NUMERIC),
  Abs: unary(NUMERIC),
  Sign: unary(NUMERIC),
  Where: { inputs: [3, 3], typeVars: ['B', 'T', 'T'], allowed: { B: BOOL }, output: 'T' },
  Concat: { inputs: [1, MANY], typeVars: ['T'], output: 'T', required: ['axis'] },
  Min: variadic(NUMERIC),
  Max: variadic(NUMERIC),
  Sum: variadic(NUMERIC),
  Mean: variadic(NUMERIC),
  Split: { inputs: (v) => (v >= 13 ? [1, 2] : [1, 1]), outputs: [1, MANY], typeVars: ['T', 'S'], allowed: { S: INT64 }, output: 'T' },
  Unsqueeze: { inputs: (v) => (v >= 13 ? [2, 2] : [1, 1]), typeVars: ['T', 'S'], allowed: { S: INT64 }, output: 'T' },
  Squeeze: { inputs: (v) => (v >= 13 ? [1, 2] : [1, 1]), typeVars: ['T', 'S'], allowed: { S: INT64 }, output: 'T' },
  ReduceMean: reduce(18),
  ReduceMax: reduce(18),
  ReduceMin: reduce(18),
  ReduceProd: reduce(18),
  ReduceL1: reduce(18),
  ReduceL2: reduce(18),
  ReduceSumSquare: reduce(18),
  ReduceLogSum: reduce(18),
  ReduceLogSumExp: reduce(18),
  ReduceSum: reduce(13),
  Range: { inputs: [3, 3], typeVars: ['T', 'T', 'T'], allowed: { T: [DataType.FLOAT, DataType.DOUBLE, DataType.INT16, DataType.INT32, DataType.INT64] }, output: 'T' },
  Shape: { inputs: [1, 1], output: DataType.INT64 },
  Size: { inputs: [1, 1], output: DataType.INT64 },
  Cast: { inputs: [1, 1], output: 'to', required: ['to'] },
  CastLike: { inputs: [2, 2], output: 'U', typeVars: ['T', 'U'] },
  Equal: compare(),
  Greater: compare(NUMERIC),
  Less: compare(NUMERIC),
  GreaterOrEqual: compare(NUMERIC),
  LessOrEqual: compare(NUMERIC),
  And: { inputs: [2, 2], typeVars: ['B', 'B'], allowed: { B: BOOL }, output: DataType.BOOL },
  Or: { inputs: [2, 2], typeVars: ['B', 'B'], allowed: { B: BOOL }, output: DataType.BOOL },
  Xor: { inputs: [2, 2], typeVars: ['B', 'B'], allowed: { B: BOOL }, output: DataType.BOOL },
  Not: { inputs: [1, 1], typeVars: ['B'], allowed: { B: BOOL }, output: DataType.BOOL },
  IsNaN: { inputs: [1, 1], output: DataType.BOOL },
  IsInf: { inputs: [1, 1], output: DataType.BOOL },
  Clip: { inputs: (v) => (v >= 11 ? [1, 3] : [1, 1]), typeVars: ['T', 'T', 'T'], allowed: { T: NUMERIC }, output: 'T' },
  Slice: { inputs: (v) => (v >= 10 ? [3, 5] : [1, 1]), typeVars: ['T', 'I', 'I', 'I', 'I'], allowed: { I: INDEX }, output: 'T' },
  Dropout: { inputs: (v) => (v >= 12 ? [1, 3] : [1, 1]), outputs: [1, 2], typeVars: ['T', 'T1', 'T2'], output: 'T' },
  // Scale and bias are not bound to X's type: ORT's own pre-17 LayerNormalization lets them differ.
  LayerNormalization: { inputs: [2, 3], outputs: [1, 3], typeVars: ['T', 'V', 'V'], allowed: { T: FLOATS }, output: 'T' },
  DequantizeLinear: { inputs: [2, 3] },
  QuantizeLinear: { inputs: [2, 3] },
  TopK: { inputs: (v) => (v >= 10 ? [2, 2] : [1, 1]), outputs: [2, 2], typeVars: ['T', 'K'], allowed: { K: INT64 } },
  ArgMax: { inputs: [1, 1], output: DataType.INT64 },
  ArgMin: { inputs: [1, 1], output: DataType.INT64 },
  Einsum: { inputs: [1, MANY], typeVars: ['T'], allowed: { T: NUMERIC }, output: 'T', required: ['equation'] },
  Trilu: { inputs: [1, 2], typeVars: ['T', 'K'], allowed: { K: INT64 }, output: 'T' },
  CumSum: { inputs: [2, 2], typeVars: ['T', 'A'], allowed: { A: INDEX }, output: 'T' },
};

/**
 * Every operator name of the default domain, through opset 24 and including the deprecated and
 * experimental ones ONNX Runtime still registers: a name outside it is one ORT refuses ("No Op
 * registered"). A missing name here would refuse a valid model, so this list errs on including.
 * SimplifiedLayerNormalization is ONNX Runtime's own (a contrib op it registers in this domain; ORT
 * GenAI's exports use it for RMSNorm).
 */
export const ONNX_OP_NAMES: ReadonlySet<string> = new Set(
  (
    'Abs Acos Acosh Add Affine AffineGrid And ArgMax ArgMin Asin Asinh Atan Atanh ATen Attention AveragePool ' +
    'BatchNormalization Bernoulli BitCast BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Cast CastLike Ceil Celu ' +
    'CenterCropPad Clip Col2Im Compress Concat ConcatFromSequence Constant ConstantFill ConstantOfShape Conv ConvInteger ConvTranspose Cos Cosh Crop ' +
    'CumProd CumSum DFT DeformConv DepthToSpace DequantizeLinear Det Div Dropout DynamicQuantizeLinear DynamicSlice Einsum Elu Equal Erf Exp ' +
    'Expand EyeLike Flatten Floor GRU GRUUnit Gather GatherElements GatherND Gelu Gemm GivenTensorFill GlobalAveragePool GlobalLpPool GlobalMaxPool ' +
    'Greater GreaterOrEqual GridSample GroupNormalization HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageDecoder ImageScaler ' +
    'InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LoopIndexTensor LpNormalization LpPool ' +
    'MatMul MatMulInteger Max MaxPool MaxRoiPool MaxUnpool Mean MeanVarianceNormalization MelWeightMatrix Min Mish Mod Mul Multinomial Neg ' +
    'NegativeLogLikelihoodLoss NonMaxSuppression NonZero Not OneHot Optional OptionalGetElement OptionalHasElement Or PRelu Pad ParametricSoftplus ' +
    'Pow QLinearConv QLinearMatMul QuantizeLinear RMSNormalization RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ' +
    'ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare RegexFullMatch Relu ' +
    'Reshape Resize ReverseSequence RoiAlign RotaryEmbedding Round STFT Scale ScaledTanh Scan Scatter ScatterElements ScatterND Selu SequenceAt ' +
    'SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap Shape Shrink Sigmoid Sign SimplifiedLayerNormalization Sin Sinh Size Slice Softmax ' +
    'SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth Split SplitToSequence Sqrt Squeeze StringConcat StringNormalizer StringSplit Sub Sum ' +
    'Swish Tan Tanh TensorScatter TfIdfVectorizer ThresholdedRelu Tile TopK Transpose Trilu Unique Unsqueeze Upsample Where Xor'
  ).split(' '),
);

export function inputArity(rule: OpRule, opset: number): Arity {
  return typeof rule.inputs === 'function' ? rule.inputs(opset) : rule.inputs;
}

/** The type variable of input `i` under `rule` (the last one repeats). */
export function typeVarOf(rule: OpRule, i: number): string | undefined {
  const vars = rule.typeVars;
  if (!vars || vars.length === 0) return undefined;
  return vars[Math.min(i, vars.length - 1)];
}

/** The element type of the node's outputs the rule fixes, given its inputs' known types. */
export function outputType(rule: OpRule, node: NodeProto, inputType: (i: number) => DataType | undefined): DataType | undefined {
  const out = rule.output;
  if (out === undefined) return undefined;
  if (out === 'to') {
    const to = node.attribute.find((a) => a.name === 'to');
    return to ? (Number(to.i) as DataType) : undefined;
  }
  if (typeof out === 'number') return out;
  for (let i = 0; i < node.input.length; i++) if (typeVarOf(rule, i) === out && node.input[i] !== '') return inputType(i);
  return undefined;
}

const SAME_RANK = new Set(
  ('Tanh Sigmoid Sqrt Reciprocal Exp Log Erf Relu Neg Abs Cast CastLike Softmax LogSoftmax Identity Round Floor Ceil Sin Cos Gelu Softplus ' +
    'Sign Not IsNaN IsInf Clip Dropout LayerNormalization Transpose CumSum Trilu Concat Split').split(' '),
);
const BROADCAST = new Set('Add Sub Mul Div Pow Mod Equal Greater Less GreaterOrEqual LessOrEqual And Or Xor Where Min Max Sum Mean'.split(' '));

/** Constant integer values of an initializer (int64 or int32, raw or typed), if small. */
export type IntValues = (name: string) => bigint[] | undefined;

/**
 * The rank of output 0 (every output for Split) where it follows from the inputs' known ranks
 * alone, without dims: element-wise ops keep or broadcast the rank, MatMul, Gather, Reshape with a
 * constant shape, Unsqueeze/Squeeze/reductions with constant axes. Undefined when not known.
 */
export function outputRank(node: NodeProto, opset: number, rankOf: (name: string) => number | undefined, ints: IntValues): number | undefined {
  const inputs = node.input;
  const r0 = inputs[0] ? rankOf(inputs[0]) : undefined;
  const attr = (name: string) => node.attribute.find((a) => a.name === name);
  const axesCount = (): number | undefined => {
    if (opset >= 13 || (opset >= 18 && node.opType.startsWith('Reduce'))) {
      if (inputs[1]) return ints(inputs[1])?.length;
    }
    const a = attr('axes');
    return a ? a.ints.length : undefined;
  };
  const op = node.opType;
  if (SAME_RANK.has(op)) return r0;
  if (BROADCAST.has(op)) {
    const ranks = inputs.filter((n) => n !== '').map((n) => rankOf(n));
    return ranks.some((r) => r === undefined) ? undefined : Math.max(...(ranks as number[]));
  }
  switch (op) {
    case 'MatMul': {
      const r1 = inputs[1] ? rankOf(inputs[1]) : undefined;
      if (r0 === undefined || r1 === undefined || r0 === 0 || r1 === 0) return undefined;
      if (r0 === 1 && r1 === 1) return 0;
      if (r0 === 1) return r1 - 1;
      if (r1 === 1) return r0 - 1;
      return Math.max(r0, r1);
    }
    case 'Gemm':
      return 2;
    case 'Gather': {
      const r1 = inputs[1] ? rankOf(inputs[1]) : undefined;
      return r0 === undefined || r1 === undefined ? undefined : r0 - 1 + r1;
    }
    case 'Reshape': {
      const shape = inputs[1] ? ints(inputs[1]) : undefined;
      return shape?.length;
    }
    case 'Unsqueeze': {
      const n = axesCount();
      return r0 === undefined || n === undefined ? undefined : r0 + n;
    }
    case 'Squeeze': {
      const n = axesCount();
      return r0 === undefined || n === undefined ? undefined : r0 - n;
    }
    case 'Shape':
    case 'Range':
      return 1;
    case 'Size':
      return 0;
    default:
      if (op.startsWith('Reduce') && OP_RULES[op]) {
        const keep = attr('keepdims');
        if (!keep || keep.i !== 0n) return r0;
        const n = axesCount();
        return r0 === undefined || n === undefined ? undefined : r0 - n;
      }
      return undefined;
  }
}

/** Inputs whose rank the op fixes, checked wherever the rank is known: position -> [min, max]. */
export const INPUT_RANKS: Record<string, Record<number, Arity>> = {
  MatMul: { 0: [1, MANY], 1: [1, MANY] },
  Gemm: { 0: [2, 2], 1: [2, 2] },
};
