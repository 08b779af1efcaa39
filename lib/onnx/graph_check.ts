// Structural checks a model must pass before any work, as ONNX Runtime would apply them at load:
// opset imports, every node input defined before use (graph input, initializer, outer scope or an
// earlier node), no value defined twice, graph outputs defined, initializer dims and data sizes, and
// per default-domain op (op_rules.ts): a known op name, input and output counts, required
// attributes, initializer ranks, and element types where they are known without shape inference
// (graph inputs, initializers, and what ops of fixed or propagated type produce).
// Runs on the parsed proto only (no session, no external data read), so memory stays bounded by the
// .onnx file itself. Throws a W4A8Error naming the first fault.
import type { GraphProto, ModelProto, NodeProto, TensorProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { DataType, bitsPerElement, byteSizeOf, dataTypeName } from './dtype';
import { isExternal } from './external_data';
import { INPUT_RANKS, ONNX_OP_NAMES, OP_RULES, inputArity, outputRank, outputType, typeVarOf } from './op_rules';

/** Highest default-domain opset ONNX Runtime 1.30 loads; a model claiming more is refused by it. */
export const MAX_ONNX_OPSET = 24;
/** Lowest default-domain opset ONNX Runtime's CPU kernels implement (older ones have no kernel: "Could not find an implementation"). */
export const MIN_ONNX_OPSET = 7;
/** ORT accepts both spellings of the default domain. */
const DEFAULT_DOMAINS = new Set(['', 'ai.onnx']);
/** Elements a tensor may claim before the count stops being an exact double (and a real file). */
const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

function fault(label: string, what: string): never {
  throw new W4A8Error(`${label} is not a loadable ONNX model: ${what}`);
}

/** What the checks of one model share: the opset of each imported domain, local functions. */
interface ModelScope {
  domains: Set<string>;
  /** The default domain's opset version. */
  opset: number;
  /** Model-local functions, as "domain:name". */
  functions: Set<string>;
}

function checkOpsets(proto: ModelProto, label: string): Set<string> {
  const domains = new Set<string>();
  for (const o of proto.opsetImport) {
    const domain = DEFAULT_DOMAINS.has(o.domain) ? '' : o.domain;
    if (domains.has(domain)) fault(label, `opset_import lists domain "${o.domain || 'ai.onnx'}" twice`);
    domains.add(domain);
    if (o.version < 1n) fault(label, `opset_import gives domain "${o.domain || 'ai.onnx'}" version ${o.version}`);
    if (domain === '' && (o.version > BigInt(MAX_ONNX_OPSET) || o.version < BigInt(MIN_ONNX_OPSET))) {
      fault(label, `opset_import asks for ai.onnx opset ${o.version}; ONNX Runtime supports ${MIN_ONNX_OPSET} to ${MAX_ONNX_OPSET}`);
    }
  }
  return domains;
}

function elementCount(t: TensorProto, where: string, label: string): number {
  let count = 1;
  for (const d of t.dims) {
    if (d < 0n) fault(label, `${where} "${t.name}" has a negative dimension ${d}`);
    count *= Number(d);
    if (count > MAX_ELEMENTS) fault(label, `${where} "${t.name}" has dims [${t.dims.join(', ')}], more elements than any file can hold`);
  }
  return count;
}

/** The data a non-external tensor carries must match its dims and type. */
function checkTensorData(t: TensorProto, where: string, label: string): void {
  const count = elementCount(t, where, label);
  // ONNX keeps strings in string_data only: a STRING tensor with raw or external data has no defined
  // layout, and ORT refuses the graph around it.
  if (t.dataType === DataType.STRING && (isExternal(t) || t.rawData.length > 0)) {
    fault(label, `${where} "${t.name}" is a STRING tensor with ${isExternal(t) ? 'external' : 'raw'} data; strings live in string_data only`);
  }
  if (isExternal(t)) {
    const expected = byteSizeOf(t.dataType, count);
    const length = t.externalData.find((e) => e.key === 'length')?.value;
    if (expected !== undefined && length !== undefined && /^\d+$/.test(length) && Number(length) !== expected) {
      fault(label, `${where} "${t.name}" (${dataTypeName(t.dataType)} [${t.dims.join(', ')}]) needs ${expected} bytes of external data; its entry says ${length}`);
    }
    return;
  }
  const mismatch = (have: number, need: number, field: string): never =>
    fault(label, `${where} "${t.name}" (${dataTypeName(t.dataType)} [${t.dims.join(', ')}]) needs ${need} ${field}; it holds ${have}`);
  if (t.rawData.length > 0) {
    const need = byteSizeOf(t.dataType, count);
    if (need !== undefined && need !== t.rawData.length) mismatch(t.rawData.length, need, 'bytes of raw_data');
    return;
  }
  const bits = bitsPerElement(t.dataType);
  switch (t.dataType) {
    case DataType.STRING:
      if (t.stringData.length !== count) mismatch(t.stringData.length, count, 'strings');
      return;
    case DataType.FLOAT:
      if (t.floatData.length !== count) mismatch(t.floatData.length, count, 'float_data values');
      return;
    case DataType.COMPLEX64:
      if (t.floatData.length !== 2 * count) mismatch(t.floatData.length, 2 * count, 'float_data values');
      return;
    case DataType.DOUBLE:
      if (t.doubleData.length !== count) mismatch(t.doubleData.length, count, 'double_data values');
      return;
    case DataType.INT64:
      if (t.int64Data.length !== count) mismatch(t.int64Data.length, count, 'int64_data values');
      return;
    case DataType.UINT64:
    case DataType.UINT32:
      if (t.uint64Data.length !== count) mismatch(t.uint64Data.length, count, 'uint64_data values');
      return;
    default:
      if (bits !== undefined && bits <= 16 && t.dataType !== DataType.UNDEFINED) {
        // int32_data holds one element per entry, or two 4-bit (four 2-bit) elements packed.
        const need = bits < 8 ? Math.ceil((count * bits) / 8) : count;
        if (t.int32Data.length !== need) mismatch(t.int32Data.length, need, 'int32_data values');
      }
  }
}

/**
 * Default-domain ops whose first inputs are all required: an empty name there is a missing input,
 * which ORT refuses at load ("marked single but has an empty string"). Optional inputs may be "".
 * Only the ops LLM graphs and our exports use; others are left to ORT.
 */
const REQUIRED_INPUTS: Record<string, number> = {
  MatMul: 2, Gemm: 2, Add: 2, Sub: 2, Mul: 2, Div: 2, Pow: 2, Gather: 2, Reshape: 2, Where: 3,
  Softmax: 1, Transpose: 1, Cast: 1, Sqrt: 1, Neg: 1, Sigmoid: 1, Tanh: 1, Erf: 1, ReduceMean: 1, ReduceMax: 1,
};

const typeName = (t: DataType): string => dataTypeName(t);

/** What is known of a graph's values without shape inference: element types and ranks. */
interface Known {
  types: Map<string, DataType>;
  ranks: Map<string, number>;
  inits: Map<string, TensorProto>;
}

/** Small constant int64/int32 initializers (shapes, axes), read from raw or typed data. */
function intValues(t: TensorProto | undefined): bigint[] | undefined {
  if (!t || isExternal(t) || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32)) return undefined;
  const count = t.dims.reduce((a, d) => a * Number(d), 1);
  if (count > 64) return undefined;
  if (t.rawData.length > 0) {
    const size = t.dataType === DataType.INT64 ? 8 : 4;
    if (t.rawData.length !== count * size) return undefined;
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    return Array.from({ length: count }, (_, i) => (size === 8 ? view.getBigInt64(i * 8, true) : BigInt(view.getInt32(i * 4, true))));
  }
  const values = t.dataType === DataType.INT64 ? t.int64Data : t.int32Data.map((v) => BigInt(v));
  return values.length === count ? values.map((v) => BigInt(v)) : undefined;
}

/** The default-domain rules of one node; `known` holds the types and ranks known so far (and gets its outputs'). */
function checkNodeRules(node: NodeProto, nodeName: string, graphName: string, scope: ModelScope, known: Known, label: string): void {
  const { types, ranks, inits } = known;
  const where = `${graphName}: ${nodeName}`;
  if (!ONNX_OP_NAMES.has(node.opType) && !scope.functions.has(`:${node.opType}`)) {
    fault(label, `${where} uses op "${node.opType}", which the ai.onnx domain does not define`);
  }
  const rule = OP_RULES[node.opType];
  if (!rule) return;
  const [minIn, maxIn] = inputArity(rule, scope.opset);
  const [minOut, maxOut] = rule.outputs ?? [1, 1];
  const range = (lo: number, hi: number) => (lo === hi ? `${lo}` : hi === Infinity ? `at least ${lo}` : `${lo} to ${hi}`);
  if (node.input.length < minIn || node.input.length > maxIn) {
    fault(label, `${where} has ${node.input.length} inputs; ${node.opType} (opset ${scope.opset}) takes ${range(minIn, maxIn)}`);
  }
  if (node.output.length < minOut || node.output.length > maxOut) {
    fault(label, `${where} has ${node.output.length} outputs; ${node.opType} gives ${range(minOut, maxOut)}`);
  }
  for (const a of rule.required ?? []) {
    if (!node.attribute.some((x) => x.name === a)) fault(label, `${where} lacks its required attribute "${a}"`);
  }
  for (const [pos, [lo, hi]] of Object.entries(rule.ranks ?? {})) {
    const t = inits.get(node.input[Number(pos)] ?? '');
    if (t && (t.dims.length < lo || t.dims.length > hi)) {
      fault(label, `${where} takes as input ${pos} the initializer "${t.name}" of rank ${t.dims.length} ([${t.dims.join(', ')}]); ${node.opType} needs rank ${range(lo, hi)} there`);
    }
  }
  for (const [pos, [lo, hi]] of Object.entries(INPUT_RANKS[node.opType] ?? {})) {
    const name = node.input[Number(pos)] ?? '';
    const rank = name === '' ? undefined : ranks.get(name);
    if (rank !== undefined && (rank < lo || rank > hi)) {
      fault(label, `${where} gets "${name}" of rank ${rank} as input ${pos}; ${node.opType} needs rank ${range(lo, hi)} there`);
    }
  }
  const bound = new Map<string, { type: DataType; input: string }>();
  node.input.forEach((name, i) => {
    const type = name === '' ? undefined : types.get(name);
    const v = typeVarOf(rule, i);
    if (type === undefined || v === undefined) return;
    const allowed = rule.allowed?.[v];
    if (allowed && !allowed.includes(type)) {
      fault(label, `${where} gets ${typeName(type)} as input ${i} ("${name}"); ${node.opType} takes ${allowed.map(typeName).join(', ')} there`);
    }
    const other = bound.get(v);
    if (other && other.type !== type) {
      fault(label, `${where} needs one element type for inputs "${other.input}" and "${name}"; they are ${typeName(other.type)} and ${typeName(type)}`);
    }
    bound.set(v, { type, input: name });
  });
  const outputs = (node.opType === 'Split' ? node.output : node.output.slice(0, 1)).filter((o) => o !== '');
  const out = outputType(rule, node, (i) => types.get(node.input[i]));
  const rank = outputRank(node, scope.opset, (n) => ranks.get(n), (n) => intValues(inits.get(n)));
  for (const o of outputs) {
    if (out !== undefined) types.set(o, out);
    if (rank !== undefined) ranks.set(o, rank);
  }
}

function elemTypeOf(v: GraphProto['input'][number]): DataType | undefined {
  const t = v.type?.value;
  return t?.case === 'tensorType' && t.value.elemType !== 0 ? (t.value.elemType as DataType) : undefined;
}

function shapeRankOf(v: GraphProto['input'][number]): number | undefined {
  const t = v.type?.value;
  return t?.case === 'tensorType' && t.value.shape ? t.value.shape.dim.length : undefined;
}

function checkGraph(g: GraphProto, outer: Set<string>, outerKnown: Known, scope: ModelScope, label: string, graphName: string): void {
  const domains = scope.domains;
  const defined = new Set<string>(outer);
  // Outer initializers stay known by type and rank; rank rules for initializers apply to the graph's own.
  const known: Known = { types: new Map(outerKnown.types), ranks: new Map(outerKnown.ranks), inits: new Map() };
  const { types, ranks, inits } = known;
  const defineOnce = (name: string, what: string): void => {
    if (name === '') return;
    if (defined.has(name) && !outer.has(name)) fault(label, `${graphName}: "${name}" is defined twice (again as ${what})`);
    defined.add(name);
  };
  for (const t of g.initializer) {
    checkTensorData(t, 'initializer', label);
    defined.add(t.name);
    inits.set(t.name, t);
    types.set(t.name, t.dataType);
    ranks.set(t.name, t.dims.length);
  }
  for (const i of g.input) {
    defined.add(i.name);
    const t = elemTypeOf(i);
    if (t !== undefined) types.set(i.name, t);
    // An input that an initializer defaults is fed at run time: its dims are not fixed.
    inits.delete(i.name);
    ranks.delete(i.name);
    const r = shapeRankOf(i);
    if (r !== undefined) ranks.set(i.name, r);
  }
  for (const s of g.sparseInitializer) if (s.values) defined.add(s.values.name);
  g.node.forEach((node, index) => {
    const nodeName = `node ${index} (${node.opType}${node.name ? ` "${node.name}"` : ''})`;
    const domain = DEFAULT_DOMAINS.has(node.domain) ? '' : node.domain;
    if (!domains.has(domain)) fault(label, `${graphName}: ${nodeName} uses domain "${node.domain || 'ai.onnx'}", which opset_import does not list`);
    const required = domain === '' ? (REQUIRED_INPUTS[node.opType] ?? 0) : 0;
    for (let i = 0; i < required; i++) {
      if (i >= node.input.length || node.input[i] === '') fault(label, `${graphName}: ${nodeName} lacks its required input ${i}`);
    }
    for (const input of node.input) {
      if (input !== '' && !defined.has(input)) {
        fault(label, `${graphName}: ${nodeName} reads "${input}", which no graph input, initializer or earlier node defines`);
      }
    }
    if (domain === '') checkNodeRules(node, nodeName, graphName, scope, known, label);
    for (const a of node.attribute) {
      if (a.t) checkTensorData(a.t, `attribute "${a.name}" of ${nodeName}, tensor`, label);
      for (const sub of [...(a.g ? [a.g] : []), ...a.graphs]) checkGraph(sub, defined, known, scope, label, `${graphName} > ${nodeName} > ${a.name}`);
    }
    for (const output of node.output) defineOnce(output, `an output of ${nodeName}`);
  });
  for (const o of g.output) {
    if (!defined.has(o.name)) fault(label, `${graphName}: graph output "${o.name}" is defined by nothing`);
  }
}

/** Checks the model as ONNX Runtime would at load (structure only); throws on the first fault. */
export function checkModelGraph(proto: ModelProto, label: string): void {
  const domains = checkOpsets(proto, label);
  for (const f of proto.functions) domains.add(`${f.domain}`);
  if (!proto.graph) fault(label, 'it has no graph');
  const opset = proto.opsetImport.find((o) => DEFAULT_DOMAINS.has(o.domain))?.version ?? BigInt(MAX_ONNX_OPSET);
  const functions = new Set(proto.functions.map((f) => `${DEFAULT_DOMAINS.has(f.domain) ? '' : f.domain}:${f.name}`));
  checkGraph(proto.graph, new Set(), { types: new Map(), ranks: new Map(), inits: new Map() }, { domains, opset: Number(opset), functions }, label, 'main graph');
}
