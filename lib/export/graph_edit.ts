// Small in-place edits of the main graph that keep it topologically sorted: insert nodes right
// before a given node, point readers at a new value, drop initializers nobody reads anymore.
import { create } from '@bufbuild/protobuf';
import { OperatorSetIdProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import type { OnnxModel } from '../onnx/model';

export function mainGraph(model: OnnxModel): GraphProto {
  const g = model.proto.graph;
  if (!g) throw new Error('the model has no graph');
  return g;
}

/** Inserts `nodes` immediately before `before` (which must be in the graph). */
export function insertBefore(model: OnnxModel, before: NodeProto, nodes: NodeProto[]): void {
  const g = mainGraph(model);
  const i = g.node.indexOf(before);
  if (i < 0) throw new Error(`insertBefore: node "${before.name}" is not in the main graph`);
  g.node.splice(i, 0, ...nodes);
}

/** The first of `nodes` in graph order. */
export function firstInGraph(model: OnnxModel, nodes: NodeProto[]): NodeProto {
  const g = mainGraph(model);
  let best = -1;
  for (const n of nodes) {
    const i = g.node.indexOf(n);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  if (best < 0) throw new Error('firstInGraph: none of the nodes is in the main graph');
  return g.node[best];
}

/** Replace input `from` with `to` on each of `nodes`. */
export function rewireInputs(nodes: NodeProto[], from: string, to: string): void {
  for (const n of nodes) n.input = n.input.map((x) => (x === from ? to : x));
}

/** Number of main-graph nodes reading `name` (graph outputs count as readers too). */
export function readerCount(model: OnnxModel, name: string): number {
  const g = mainGraph(model);
  let count = g.output.some((o) => o.name === name) ? 1 : 0;
  for (const n of g.node) if (n.input.includes(name)) count++;
  return count;
}

/** Remove initializer `name` when no node reads it any more. */
export function dropIfUnused(model: OnnxModel, name: string): void {
  if (readerCount(model, name) > 0) return;
  const g = mainGraph(model);
  g.initializer = g.initializer.filter((t) => t.name !== name);
  g.input = g.input.filter((v) => v.name !== name);
}

/** A name not yet used by any value or initializer of the graph. */
export function uniqueName(model: OnnxModel, base: string): string {
  const g = mainGraph(model);
  const used = new Set<string>([...g.initializer.map((t) => t.name), ...g.input.map((v) => v.name), ...g.output.map((v) => v.name)]);
  for (const n of g.node) for (const o of n.output) used.add(o);
  if (!used.has(base)) return base;
  for (let i = 1; ; i++) if (!used.has(`${base}_${i}`)) return `${base}_${i}`;
}

/** Make sure the model imports `domain` at `version` or later (raises the default domain's version when lower). */
export function ensureOpset(model: OnnxModel, domain: string, version: number): { raisedFrom?: number } {
  const imports = model.proto.opsetImport;
  const entry = imports.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === domain);
  if (!entry) {
    imports.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
    return {};
  }
  if (Number(entry.version) < version) {
    const from = Number(entry.version);
    entry.version = BigInt(version);
    return { raisedFrom: from };
  }
  return {};
}

/** The model's default-domain opset version. */
export function defaultOpset(model: OnnxModel): number {
  const e = model.proto.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  return e ? Number(e.version) : 1;
}
