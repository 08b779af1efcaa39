// The longest sequence a decoder model can take, from what is written down about it: ORT GenAI's
// genai_config.json or Hugging Face's config.json beside the model, else the graph itself (the
// rows of the RoPE or position-embedding table that position_ids index, or our importer's
// max_sequence_length metadata). Past that length a Gather reads outside its table and ONNX
// Runtime fails with an error that names neither the model nor the fix.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TensorProto } from 'onnx-buf';
import { loadModel } from './model';
import { tensorDims } from './tensor';

export interface MaxLength {
  /** Positions the model can attend over (prompt and generated tokens together). */
  tokens: number;
  /** Where the number was read, for messages: "genai_config.json context_length", ... */
  source: string;
}

/** Larger model files are not parsed just to find a table size (their configs usually say it). */
const GRAPH_SCAN_MAX_BYTES = 512 * 2 ** 20;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

function fromConfigs(dir: string): MaxLength | undefined {
  const genai = readJson(path.join(dir, 'genai_config.json')) as { model?: { context_length?: unknown } } | undefined;
  const ctx = positiveInt(genai?.model?.context_length);
  if (ctx) return { tokens: ctx, source: 'genai_config.json context_length' };
  const hf = readJson(path.join(dir, 'config.json')) as Record<string, unknown> | undefined;
  if (hf && typeof hf === 'object') {
    for (const key of ['max_position_embeddings', 'n_positions', 'n_ctx', 'max_sequence_length', 'seq_length']) {
      const v = positiveInt(hf[key]);
      if (v) return { tokens: v, source: `config.json ${key}` };
    }
  }
  return undefined;
}

function fromGraph(modelPath: string): MaxLength | undefined {
  let size: number;
  try {
    size = fs.statSync(modelPath).size;
  } catch {
    return undefined;
  }
  if (size > GRAPH_SCAN_MAX_BYTES) return undefined;
  let model;
  try {
    model = loadModel(modelPath);
  } catch {
    return undefined; // the session reports an unreadable model with its own error
  }
  const graph = model.proto.graph!;
  const inits = new Map<string, TensorProto>(graph.initializer.map((t) => [t.name, t]));
  const rowsOf = (name: string | undefined): number | undefined => {
    const t = name === undefined ? undefined : inits.get(name);
    const dims = t ? tensorDims(t) : [];
    return dims.length === 2 && dims[0] > 0 ? dims[0] : undefined;
  };
  let best: MaxLength | undefined;
  const take = (rows: number | undefined, what: string): void => {
    if (rows !== undefined && (!best || rows < best.tokens)) best = { tokens: rows, source: what };
  };
  for (const node of graph.node) {
    // Gather(table, position_ids): a RoPE cos/sin table or a learned position embedding.
    if (node.opType === 'Gather' && node.input[1] === 'position_ids') take(rowsOf(node.input[0]), `the ${node.input[0]} table (rows indexed by position_ids)`);
    // com.w4a8 CachedAttention (the fused decoder): input 7 is the RoPE cos table, indexed by position_ids.
    if (node.opType === 'CachedAttention' && node.domain === 'com.w4a8') take(rowsOf(node.input[7]), `the ${node.input[7]} table (CachedAttention's cos_cache)`);
        // com.microsoft EmbedLayerNormalization: input 3 is the position embedding.
    if (node.opType === 'EmbedLayerNormalization') take(rowsOf(node.input[3]), `the ${node.input[3]} position table`);
  }
  if (best) return best;
  const meta = model.proto.metadataProps.find((p) => p.key === 'max_sequence_length');
  const v = meta ? positiveInt(Number(meta.value)) : undefined;
  return v ? { tokens: v, source: 'model metadata max_sequence_length' } : undefined;
}

/** The model's maximum sequence length, or undefined when nothing says it. */
export function modelMaxLength(modelPath: string): MaxLength | undefined {
  return fromConfigs(path.dirname(path.resolve(modelPath))) ?? fromGraph(modelPath);
}
