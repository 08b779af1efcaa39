// Structural checks a model must pass before any work, as ONNX Runtime would apply them at load:
// opset imports, every node input defined before use (graph input, initializer, outer scope or an
// earlier node), no value defined twice, graph outputs defined, initializer dims and data sizes.
// Runs on the parsed proto only (no session, no external data read), so memory stays bounded by the
// .onnx file itself. Throws a W4A8Error naming the first fault.
import type { GraphProto, ModelProto, TensorProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { DataType, bitsPerElement, byteSizeOf, dataTypeName } from './dtype';
import { isExternal } from './external_data';

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

function checkGraph(g: GraphProto, outer: Set<string>, domains: Set<string>, label: string, graphName: string): void {
  const defined = new Set<string>(outer);
  const defineOnce = (name: string, what: string): void => {
    if (name === '') return;
    if (defined.has(name) && !outer.has(name)) fault(label, `${graphName}: "${name}" is defined twice (again as ${what})`);
    defined.add(name);
  };
  for (const i of g.input) defined.add(i.name);
  for (const t of g.initializer) {
    checkTensorData(t, 'initializer', label);
    defined.add(t.name);
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
    for (const a of node.attribute) {
      if (a.t) checkTensorData(a.t, `attribute "${a.name}" of ${nodeName}, tensor`, label);
      for (const sub of [...(a.g ? [a.g] : []), ...a.graphs]) checkGraph(sub, defined, domains, label, `${graphName} > ${nodeName} > ${a.name}`);
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
  checkGraph(proto.graph, new Set(), domains, label, 'main graph');
}
