// Graph construction helpers for the importers and exporters: nodes with typed attributes,
// value infos with symbolic dims, and a model from a graph description.
import * as path from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AttrType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import type { DataType } from './dtype';
import type { OnnxModel } from './model';

/** Forces a FLOAT / FLOATS attribute for values that happen to be integers (alpha: 1). */
export interface FloatAttr {
  kind: 'float';
  value: number | number[];
}
export function floatAttr(value: number | number[]): FloatAttr {
  return { kind: 'float', value };
}

/**
 * Attribute values: an integer number or bigint -> INT, other numbers -> FLOAT, string or
 * Uint8Array -> STRING, number[] -> INTS (FLOATS if any is fractional), string[] -> STRINGS,
 * TensorProto -> TENSOR, GraphProto -> GRAPH, floatAttr(x) -> FLOAT(S).
 */
export type AttrValue = number | bigint | string | Uint8Array | number[] | bigint[] | string[] | TensorProto | GraphProto | FloatAttr;

const utf8 = new TextEncoder();

function isMessage(v: unknown, typeName: string): boolean {
  return typeof v === 'object' && v !== null && (v as { $typeName?: string }).$typeName === typeName;
}

export function makeAttribute(name: string, v: AttrValue): AttributeProto {
  const a = create(AttributeProtoSchema, { name });
  if (typeof v === 'bigint') Object.assign(a, { type: AttrType.INT, i: v });
  else if (typeof v === 'number') {
    if (!Number.isFinite(v) && !Number.isNaN(v)) Object.assign(a, { type: AttrType.FLOAT, f: v });
    else if (Number.isInteger(v)) Object.assign(a, { type: AttrType.INT, i: BigInt(v) });
    else Object.assign(a, { type: AttrType.FLOAT, f: v });
  } else if (typeof v === 'string') Object.assign(a, { type: AttrType.STRING, s: utf8.encode(v) });
  else if (v instanceof Uint8Array) Object.assign(a, { type: AttrType.STRING, s: new Uint8Array(v) });
  else if (isMessage(v, 'onnx.TensorProto')) Object.assign(a, { type: AttrType.TENSOR, t: v });
  else if (isMessage(v, 'onnx.GraphProto')) Object.assign(a, { type: AttrType.GRAPH, g: v });
  else if (typeof v === 'object' && v !== null && (v as FloatAttr).kind === 'float') {
    const f = (v as FloatAttr).value;
    if (Array.isArray(f)) Object.assign(a, { type: AttrType.FLOATS, floats: [...f] });
    else Object.assign(a, { type: AttrType.FLOAT, f });
  } else if (Array.isArray(v)) {
    const list = v as unknown[];
    if (list.every((x) => typeof x === 'string')) Object.assign(a, { type: AttrType.STRINGS, strings: (list as string[]).map((s) => utf8.encode(s)) });
    else if (list.every((x) => typeof x === 'bigint')) Object.assign(a, { type: AttrType.INTS, ints: [...(list as bigint[])] });
    else if (list.every((x) => typeof x === 'number')) {
      const nums = list as number[];
      if (nums.every((x) => Number.isInteger(x))) Object.assign(a, { type: AttrType.INTS, ints: nums.map((x) => BigInt(x)) });
      else Object.assign(a, { type: AttrType.FLOATS, floats: [...nums] });
    } else throw new TypeError(`makeAttribute: attribute "${name}" mixes element types`);
  } else {
    throw new TypeError(`makeAttribute: unsupported value for attribute "${name}": ${String(v)}`);
  }
  return a;
}

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttrValue> = {},
  opts: { name?: string; domain?: string } = {},
): NodeProto {
  // Only set what is given: onnx.proto is proto2, so an empty name would still be written.
  const node = create(NodeProtoSchema, {
    opType,
    input: [...inputs],
    output: [...outputs],
    attribute: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
  });
  if (opts.name) node.name = opts.name;
  if (opts.domain) node.domain = opts.domain;
  return node;
}

/** A tensor value info; a number is a fixed dim, a string a symbolic one ("batch"). */
export function makeValueInfo(name: string, elemType: DataType, shape: (number | string)[]): ValueInfoProto {
  const dim = shape.map((d) =>
    typeof d === 'number'
      ? create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } })
      : create(TensorShapeProto_DimensionSchema, { value: { case: 'dimParam', value: d } }),
  );
  const tensorType = create(TypeProto_TensorSchema, { elemType, shape: create(TensorShapeProtoSchema, { dim }) });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

export interface GraphSpec {
  name: string;
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers: TensorProto[];
  valueInfo?: ValueInfoProto[];
}

export function makeGraph(spec: GraphSpec): GraphProto {
  return create(GraphProtoSchema, {
    name: spec.name,
    node: spec.nodes,
    input: spec.inputs,
    output: spec.outputs,
    initializer: spec.initializers,
    valueInfo: spec.valueInfo ?? [],
  });
}

/** IR 10 (ONNX 1.16) is what ORT 1.30 and every current tool reads. */
export const DEFAULT_IR_VERSION = 10;

export function makeModel(
  graph: GraphSpec,
  opsets: { domain: string; version: number }[],
  opts: { irVersion?: number; producerName?: string; producerVersion?: string; dir?: string } = {},
): OnnxModel {
  const proto = create(ModelProtoSchema, {
    irVersion: BigInt(opts.irVersion ?? DEFAULT_IR_VERSION),
    producerName: opts.producerName ?? 'w4a8',
    opsetImport: opsets.map((o) => create(OperatorSetIdProtoSchema, { domain: o.domain, version: BigInt(o.version) })),
    graph: makeGraph(graph),
  });
  if (opts.producerVersion) proto.producerVersion = opts.producerVersion;
  return { proto, dir: path.resolve(opts.dir ?? '.') };
}
