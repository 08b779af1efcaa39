// The llama2.c transformer as an ONNX graph of standard opset-17 ops, computing what run.c's
// `forward` computes, for every new position at once, with a key/value cache in the names
// Optimum and ONNX Runtime GenAI use: input_ids, attention_mask, position_ids and
// past_key_values.N.key|value in; logits and present.N.key|value out. An empty past (length 0)
// scores a whole sequence from scratch. Linear layers are MatMuls with [in, out] float
// initializers, as those exports have them, so the quantizer finds them the same way in every model.
// The builder's float type makes it an fp32 or an fp16 model (fp16 weights, activations and cache).
import { makeValueInfo, makeModel } from '../onnx/build';
import type { OnnxModel } from '../onnx/model';
import { DataType } from '../onnx/tensor';
import type { Progress } from '../util/progress';
import { GraphBuilder } from './graph_builder';
import type { Llama2cConfig } from './llama2c_checkpoint';
import { ropeTables } from '../native/tensor_layout';

/** Where the decoder's weights come from: a checkpoint file, or a random generator. */
export interface Llama2cWeights {
  readonly config: Llama2cConfig;
  /** Logical [rows, cols] (or [n]) shape of one layer's slice of a llama2.c tensor. */
  shape(name: string): number[];
  /** fp32 values of `name` for `layer`, in llama2.c's layout ([out, in] for linear layers). */
  read(name: string, layer?: number): Float32Array;
}

/** run.c adds 1e-5 inside the RMSNorm square root. */
export const RMS_NORM_EPS = 1e-5;
export const ROPE_THETA = 10000;
export const OPSET = 17;

/** Initializer names of the linear layers, by llama2.c tensor name. */
export const LINEAR_NAMES: Record<string, (layer: number) => string> = {
  wq: (l) => `layers.${l}.attn.q_proj.weight`,
  wk: (l) => `layers.${l}.attn.k_proj.weight`,
  wv: (l) => `layers.${l}.attn.v_proj.weight`,
  wo: (l) => `layers.${l}.attn.o_proj.weight`,
  w1: (l) => `layers.${l}.mlp.gate_proj.weight`,
  w3: (l) => `layers.${l}.mlp.up_proj.weight`,
  w2: (l) => `layers.${l}.mlp.down_proj.weight`,
};
export const LM_HEAD_NAME = 'lm_head.weight';
export const pastKeyName = (layer: number): string => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number): string => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number): string => `present.${layer}.key`;
export const presentValueName = (layer: number): string => `present.${layer}.value`;

/**
 * Build the decoder; weights are read and transposed one at a time. A builder given a weight
 * sink (see GraphBuilder) hands each initializer over as soon as it is made.
 */
export async function buildLlama2cModel(ckpt: Llama2cWeights, progress?: Progress, g = new GraphBuilder(), sourceLabel = 'llama2.c legacy v0 checkpoint'): Promise<OnnxModel> {
  const c = ckpt.config;
  const { step, linear, embedded } = startDecoder(ckpt, g, progress, 'import llama2.c', true);
  let x = embedded;

  // This call's queries sit at absolute positions past..total-1 and see keys 0..total-1 up to
  // their own position (causal), minus the keys attention_mask zeroes (padding).
  const one = g.addInt64('const.one_scalar', [1], []);
  const pastLen = g.op1('/positions', 'Gather', [g.op1('/positions', 'Shape', [pastKeyName(0)]), g.addInt64('const.two_scalar', [2], [])], { axis: 0 });
  const seqLen = g.op1('/positions', 'Gather', [g.op1('/positions', 'Shape', ['input_ids']), one], { axis: 0 });
  const totalLen = g.op1('/positions', 'Add', [pastLen, seqLen]);
  const queryPos = g.op1('/causal_mask', 'Range', [pastLen, totalLen, one]);
  const keyPos = g.op1('/causal_mask', 'Range', [g.addInt64('const.zero_scalar', [0], []), totalLen, one]);
  const queryRows = g.op1('/causal_mask', 'Unsqueeze', [queryPos, g.addInt64('const.axes_1', [1])]);
  const keyCols = g.op1('/causal_mask', 'Unsqueeze', [keyPos, g.addInt64('const.axes_0', [0])]);
  const future = g.op1('/causal_mask', 'Greater', [keyCols, queryRows]);
  const padding = g.op1('/padding_mask', 'Unsqueeze', [
    g.op1('/padding_mask', 'Equal', ['attention_mask', g.addInt64('const.zero_int', [0], [])]),
    g.addInt64('const.axes_1_2', [1, 2]),
  ]);
  const hidden = g.op1('/attn_mask', 'Or', [future, padding]);
  const negInf = g.addScalar('const.neg_inf', -Infinity);

  const tables = await ropeTables(c.seqLen, c.headSize, ROPE_THETA);
  g.addFloat('rope.cos', [c.seqLen, c.headSize / 2], tables.cos);
  g.addFloat('rope.sin', [c.seqLen, c.headSize / 2], tables.sin);
  step('rope tables');
  // [batch, seq, hs/2] -> [batch, seq, 1, hs/2, 1]: broadcasts over heads and against the (even, odd) split.
  const ropeAxes = g.addInt64('const.axes_2_4', [2, 4]);
  const cos = g.op1('/rope', 'Unsqueeze', [g.op1('/rope', 'Gather', ['rope.cos', 'position_ids'], { axis: 0 }), ropeAxes]);
  const sin = g.op1('/rope', 'Unsqueeze', [g.op1('/rope', 'Gather', ['rope.sin', 'position_ids'], { axis: 0 }), ropeAxes]);

  const eps = g.addScalar('const.rms_norm_eps', RMS_NORM_EPS);
  const rmsNorm = (scope: string, input: string, weightName: string, data: Float32Array): string => {
    g.addFloat(weightName, [c.dim], data);
    const sq = g.op1(scope, 'Mul', [input, input]);
    const mean = g.op1(scope, 'ReduceMean', [sq], { axes: [-1], keepdims: 1 });
    const inv = g.op1(scope, 'Reciprocal', [g.op1(scope, 'Sqrt', [g.op1(scope, 'Add', [mean, eps])])]);
    return g.op1(scope, 'Mul', [g.op1(scope, 'Mul', [input, inv]), weightName]);
  };

  // run.c rotates the pairs (2i, 2i+1) of every head by angle pos * freq_i.
  const rotaryShape = (heads: number): string => g.addInt64(`const.rope_shape_${heads}`, [0, 0, heads, c.headSize / 2, 2]);
  const headsShape = (heads: number): string => g.addInt64(`const.heads_shape_${heads}`, [0, 0, heads, c.headSize]);
  const rope = (scope: string, t: string, heads: number): string => {
    const pairs = g.op1(scope, 'Reshape', [t, rotaryShape(heads)]);
    const [even, odd] = g.op(scope, 'Split', [pairs], { axis: -1 }, 2);
    const rotEven = g.op1(scope, 'Sub', [g.op1(scope, 'Mul', [even, cos]), g.op1(scope, 'Mul', [odd, sin])]);
    const rotOdd = g.op1(scope, 'Add', [g.op1(scope, 'Mul', [even, sin]), g.op1(scope, 'Mul', [odd, cos])]);
    return g.op1(scope, 'Reshape', [g.op1(scope, 'Concat', [rotEven, rotOdd], { axis: -1 }), headsShape(heads)]);
  };

  // Grouped-query attention: query head h reads kv head floor(h / kvMul), as in run.c. The
  // cache keeps the kv heads only; they are repeated after it, on [batch, kv heads, total, hs].
  const kvMul = c.nHeads / c.nKvHeads;
  const repeatKv = (scope: string, t: string): string => {
    if (kvMul === 1) return t;
    const grouped = g.op1(scope, 'Unsqueeze', [t, g.addInt64('const.axes_2', [2])]);
    const expanded = g.op1(scope, 'Expand', [grouped, g.addInt64('const.kv_repeat', [1, 1, kvMul, 1, 1])]);
    return g.op1(scope, 'Reshape', [expanded, g.addInt64('const.repeated_kv_shape', [0, c.nHeads, -1, c.headSize])]);
  };
  const scale = g.addScalar('const.attn_scale', Math.fround(Math.sqrt(c.headSize)));
  const mergeShape = g.addInt64('const.merge_heads_shape', [0, 0, c.dim]);

  for (let l = 0; l < c.nLayers; l++) {
    const p = `/layers.${l}`;
    const xa = rmsNorm(`${p}/attn_norm`, x, `layers.${l}.attn_norm.weight`, ckpt.read('rms_att_weight', l));
    step(`layers.${l}.attn_norm.weight`);
    const q = await linear(`${p}/attn/q_proj`, xa, LINEAR_NAMES.wq(l), 'wq', l);
    const k = await linear(`${p}/attn/k_proj`, xa, LINEAR_NAMES.wk(l), 'wk', l);
    const v = await linear(`${p}/attn/v_proj`, xa, LINEAR_NAMES.wv(l), 'wv', l);
    const qh = rope(`${p}/attn/rope_q`, g.op1(`${p}/attn`, 'Reshape', [q, headsShape(c.nHeads)]), c.nHeads);
    const kh = rope(`${p}/attn/rope_k`, g.op1(`${p}/attn`, 'Reshape', [k, headsShape(c.nKvHeads)]), c.nKvHeads);
    const vh = g.op1(`${p}/attn`, 'Reshape', [v, headsShape(c.nKvHeads)]);
    // [batch, seq, heads, hs] -> [batch, heads, seq, hs], appended to the cache along seq.
    const kNew = g.op1(`${p}/attn`, 'Transpose', [kh], { perm: [0, 2, 1, 3] });
    const vNew = g.op1(`${p}/attn`, 'Transpose', [vh], { perm: [0, 2, 1, 3] });
    const kAll = g.op1(`${p}/attn/cache_k`, 'Concat', [pastKeyName(l), kNew], { axis: 2 }, presentKeyName(l));
    const vAll = g.op1(`${p}/attn/cache_v`, 'Concat', [pastValueName(l), vNew], { axis: 2 }, presentValueName(l));
    const qT = g.op1(`${p}/attn`, 'Transpose', [qh], { perm: [0, 2, 1, 3] });
    const kT = g.op1(`${p}/attn`, 'Transpose', [repeatKv(`${p}/attn/repeat_k`, kAll)], { perm: [0, 1, 3, 2] });
    const vT = repeatKv(`${p}/attn/repeat_v`, vAll);
    const scores = g.op1(`${p}/attn`, 'Div', [g.op1(`${p}/attn/scores`, 'MatMul', [qT, kT]), scale]);
    const probs = g.op1(`${p}/attn`, 'Softmax', [g.op1(`${p}/attn`, 'Where', [hidden, negInf, scores])], { axis: -1 });
    const ctx = g.op1(`${p}/attn/context`, 'MatMul', [probs, vT]);
    const merged = g.op1(`${p}/attn`, 'Reshape', [g.op1(`${p}/attn`, 'Transpose', [ctx], { perm: [0, 2, 1, 3] }), mergeShape]);
    const attnOut = await linear(`${p}/attn/o_proj`, merged, LINEAR_NAMES.wo(l), 'wo', l);
    x = g.op1(`${p}/attn`, 'Add', [x, attnOut]);

    const xf = rmsNorm(`${p}/ffn_norm`, x, `layers.${l}.ffn_norm.weight`, ckpt.read('rms_ffn_weight', l));
    step(`layers.${l}.ffn_norm.weight`);
    const gate = await linear(`${p}/mlp/gate_proj`, xf, LINEAR_NAMES.w1(l), 'w1', l);
    const up = await linear(`${p}/mlp/up_proj`, xf, LINEAR_NAMES.w3(l), 'w3', l);
    const silu = g.op1(`${p}/mlp`, 'Mul', [gate, g.op1(`${p}/mlp`, 'Sigmoid', [gate])]);
    const down = await linear(`${p}/mlp/down_proj`, g.op1(`${p}/mlp`, 'Mul', [silu, up]), LINEAR_NAMES.w2(l), 'w2', l);
    x = g.op1(`${p}/mlp`, 'Add', [x, down]);
  }

  const xn = rmsNorm('/norm', x, 'norm.weight', ckpt.read('rms_final_weight'));
  // The output head: its MatMul writes the graph output `logits` directly.
  await linear('/lm_head', xn, LM_HEAD_NAME, c.sharedClassifier ? 'token_embedding_table' : 'wcls', 0, 'logits');
  progress?.stop();

  return finishDecoderModel(g, c, sourceLabel, [{ domain: '', version: OPSET }]);
}

/** What both layouts' builders begin with: progress steps, the linear-layer helper, the graph's inputs and outputs, and the token embedding. */
export function startDecoder(ckpt: Llama2cWeights, g: GraphBuilder, progress: Progress | undefined, phase: string, positionIds: boolean) {
  const c = ckpt.config;
  let done = 0;
  const step = (detail: string): void => progress?.update(++done, detail);
  progress?.start(phase, c.nLayers * 9 + 3);

  // A linear layer: run.c computes W x with W [out, in]; the MatMul needs W^T [in, out].
  const linear = async (scope: string, x: string, weightName: string, source: string, layer: number, output?: string): Promise<string> => {
    const [rows, cols] = ckpt.shape(source);
    await g.addFloatTransposed(weightName, ckpt.read(source, layer), rows, cols);
    step(weightName);
    return g.op1(scope, 'MatMul', [x, weightName], {}, output);
  };

  declareDecoderIo(g, c, positionIds);
  g.addFloat('tok_embeddings.weight', [c.vocabSize, c.dim], ckpt.read('token_embedding_table'));
  const embedded = g.op1('/tok_embeddings', 'Gather', ['tok_embeddings.weight', 'input_ids'], { axis: 0 });
  step('tok_embeddings.weight');
  return { step, linear, embedded };
}

/**
 * The decoder's graph inputs and outputs in the Optimum / ONNX Runtime GenAI names; position_ids
 * only where the graph reads it (ONNX Runtime's GroupQueryAttention derives positions itself).
 */
export function declareDecoderIo(g: GraphBuilder, c: Llama2cConfig, positionIds: boolean): void {
  const past = 'past_sequence_length';
  const total = 'total_sequence_length';
  g.inputs.push(makeValueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']));
  g.inputs.push(makeValueInfo('attention_mask', DataType.INT64, ['batch_size', total]));
  if (positionIds) g.inputs.push(makeValueInfo('position_ids', DataType.INT64, ['batch_size', 'sequence_length']));
  for (let l = 0; l < c.nLayers; l++) {
    g.inputs.push(makeValueInfo(pastKeyName(l), g.floatType, ['batch_size', c.nKvHeads, past, c.headSize]));
    g.inputs.push(makeValueInfo(pastValueName(l), g.floatType, ['batch_size', c.nKvHeads, past, c.headSize]));
  }
  g.outputs.push(makeValueInfo('logits', g.floatType, ['batch_size', 'sequence_length', c.vocabSize]));
  for (let l = 0; l < c.nLayers; l++) {
    g.outputs.push(makeValueInfo(presentKeyName(l), g.floatType, ['batch_size', c.nKvHeads, total, c.headSize]));
    g.outputs.push(makeValueInfo(presentValueName(l), g.floatType, ['batch_size', c.nKvHeads, total, c.headSize]));
  }
}

/** The model around the built graph, with the metadata eval and generate read (maximum length, vocabulary, BOS/EOS). */
export function finishDecoderModel(g: GraphBuilder, c: Llama2cConfig, sourceLabel: string, opsets: { domain: string; version: number }[]): OnnxModel {
  const model = makeModel(
    { name: 'llama2c', nodes: g.nodes, inputs: g.inputs, outputs: g.outputs, initializers: g.initializers },
    opsets,
    { producerName: 'w4a8 import llama2c' },
  );
  const meta: Record<string, string> = {
    source: sourceLabel,
    max_sequence_length: String(c.seqLen),
    vocab_size: String(c.vocabSize),
    bos_token_id: '1',
    eos_token_id: '2',
  };
  model.proto.metadataProps = Object.entries(meta).map(([key, value]) => ({ $typeName: 'onnx.StringStringEntryProto', key, value }));
  return model;
}
