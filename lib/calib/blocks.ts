// Sequential calibration runs a decoder one block at a time, so it first splits the graph into
// its blocks. Exports name their nodes after the module that made them (llama2c imports
// "/layers.3/attn/q_proj/MatMul", Optimum "/model/layers.3/...", GPT-2 "/transformer/h.3/..."):
// a node whose name (else an output's or a weight's) carries a block index belongs to that
// block. A node without one (embedding, rotary tables, mask, final norm) belongs to the first
// stage that reads it, so it runs once and its value is carried; one read by nothing belongs to
// the tail after the last block. Every value a later stage reads crosses the boundary in memory.
import type { NodeProto } from 'onnx-buf';
import type { OnnxModel } from '../onnx/model';

const BLOCK_NAME = /(?:^|[^A-Za-z0-9])(?:layers|layer|h|blocks|block)[._](\d+)(?![0-9])/;

/** The block index a node, value or weight name carries (layers.N, layer.N, h.N, blocks.N), if any. */
export function blockIndexOf(name: string): number | undefined {
  const m = BLOCK_NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** What the split needs of a planned layer: its node and the activation it reads. */
export interface BlockLayer {
  node: NodeProto;
  input: string;
}

export interface BlockStage {
  /** The block index from the names; undefined for the tail after the last block. */
  block?: number;
  label: string;
  /** Layer inputs captured in this stage (their values are computed here, on the quantized prefix). */
  targets: string[];
  /** Nodes of this stage computing the targets, in graph order. */
  captureNodes: NodeProto[];
  /** Values computed here that later stages read. */
  carriedOut: string[];
  /** Nodes of this stage computing carriedOut, in graph order. */
  forwardNodes: NodeProto[];
}

export interface BlockSplit {
  stages: BlockStage[];
  /** Per carried value: the index (in `stages`) of the last stage reading it; it can be dropped after. */
  lastReader: Map<string, number>;
}

function hasSubgraph(node: NodeProto): boolean {
  return node.attribute.some((a) => a.g !== undefined || a.graphs.length > 0);
}

/** Nodes among `candidates` needed to compute `wanted`, in graph order. */
export function nodesComputing(candidates: NodeProto[], wanted: Iterable<string>): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const n of candidates) for (const o of n.output) if (o !== '') producer.set(o, n);
  const keep = new Set<NodeProto>();
  const todo = [...wanted];
  while (todo.length > 0) {
    const n = producer.get(todo.pop()!);
    if (!n || keep.has(n)) continue;
    keep.add(n);
    for (const i of n.input) if (i !== '') todo.push(i);
  }
  return candidates.filter((n) => keep.has(n));
}

/**
 * Splits the graph into stages by block, or says why it cannot (then sequential calibration is
 * refused). `layers` are the layers to calibrate; a layer input is captured in the stage that
 * computes it.
 */
export function splitBlocks(model: OnnxModel, layers: BlockLayer[], label: string): BlockSplit | { refused: string } {
  const graph = model.proto.graph;
  if (!graph) return { refused: `${label} has no graph` };
  const nodes = graph.node;
  const control = nodes.find(hasSubgraph);
  if (control) return { refused: `${label} has control-flow nodes (${control.opType} "${control.name}"), which sequential calibration does not split` };
  const inits = new Set(graph.initializer.map((t) => t.name));
  const graphInputs = new Set(graph.input.map((v) => v.name));
  const producerIndex = new Map<string, number>();
  nodes.forEach((n, i) => n.output.forEach((o) => o !== '' && producerIndex.set(o, i)));
  const readers = new Map<string, number[]>();
  nodes.forEach((n, i) => n.input.forEach((v) => v !== '' && (readers.get(v) ?? readers.set(v, []).get(v)!).push(i)));

  const named = (n: NodeProto): number | undefined => {
    for (const name of [n.name, ...n.output]) {
      const b = blockIndexOf(name);
      if (b !== undefined) return b;
    }
    for (const v of n.input) if (inits.has(v)) {
      const b = blockIndexOf(v);
      if (b !== undefined) return b;
    }
    return undefined;
  };

  // Named nodes keep their block; the others go to the first stage reading them (graph order is
  // topological, so their readers are placed first when walking backwards). Tail = Infinity.
  const stage = nodes.map(named);
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (stage[i] !== undefined) continue;
    let s = Infinity;
    for (const o of nodes[i].output) for (const r of readers.get(o) ?? []) s = Math.min(s, stage[r]!);
    stage[i] = s;
  }
  for (let i = 0; i < nodes.length; i++) {
    for (const v of nodes[i].input) {
      const p = producerIndex.get(v);
      if (p !== undefined && stage[p]! > stage[i]!) {
        return { refused: `the block names of ${label} are not in graph order ("${nodes[i].name || nodes[i].opType}" of block ${stage[i]} reads "${v}" of block ${stage[p]})` };
      }
    }
  }

  // A layer input is captured where it is computed (a graph input: in the first stage).
  const keys = [...new Set(stage as number[])].sort((a, b) => a - b);
  const targetsOf = new Map<number, string[]>(keys.map((k) => [k, []]));
  const seen = new Set<string>();
  for (const l of layers) {
    if (seen.has(l.input)) continue;
    seen.add(l.input);
    const p = producerIndex.get(l.input);
    targetsOf.get(p === undefined ? keys[0] : stage[p]!)!.push(l.input);
  }
  const blocks = new Set(keys.filter((k) => Number.isFinite(k) && targetsOf.get(k)!.length > 0));
  if (blocks.size < 2) {
    return {
      refused:
        `no decoder blocks found in ${label}: sequential calibration needs node names carrying the block index ` +
        '(layers.N, h.N, blocks.N, as llama2c imports, Optimum and ONNX Runtime GenAI exports have)',
    };
  }

  // Backwards: each stage computes its targets and what later stages read of its values.
  const byStage = new Map<number, NodeProto[]>(keys.map((k) => [k, []]));
  nodes.forEach((n, i) => byStage.get(stage[i]!)!.push(n));
  const built: BlockStage[] = [];
  let needed = new Set<string>();
  for (let ki = keys.length - 1; ki >= 0; ki--) {
    const k = keys[ki];
    const own = byStage.get(k)!;
    const produced = new Set(own.flatMap((n) => n.output));
    const carriedOut = [...needed].filter((v) => produced.has(v));
    const targets = targetsOf.get(k)!;
    const captureNodes = nodesComputing(own, targets);
    const forwardNodes = nodesComputing(own, carriedOut);
    if (targets.length === 0 && carriedOut.length === 0) continue;
    const next = new Set([...needed].filter((v) => !produced.has(v)));
    for (const n of new Set([...captureNodes, ...forwardNodes])) for (const v of n.input) if (v !== '' && !inits.has(v) && !produced.has(v)) next.add(v);
    needed = next;
    const block = Number.isFinite(k) ? k : undefined;
    built.unshift({ block, label: block === undefined ? 'after the last block' : `block ${block}`, targets, captureNodes, carriedOut, forwardNodes });
  }
  const dangling = [...needed].filter((v) => !graphInputs.has(v));
  if (dangling.length > 0) return { refused: `${label} reads ${dangling.slice(0, 3).map((v) => `"${v}"`).join(', ')} before any node computes it` };

  const lastReader = new Map<string, number>();
  built.forEach((s, i) => {
    const produced = new Set([...s.captureNodes, ...s.forwardNodes].flatMap((n) => n.output));
    for (const n of [...s.captureNodes, ...s.forwardNodes]) for (const v of n.input) if (v !== '' && !inits.has(v) && !produced.has(v) && !graphInputs.has(v)) lastReader.set(v, i);
  });
  return { stages: built, lastReader };
}
