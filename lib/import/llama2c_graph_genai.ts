// The llama2.c transformer in the layout ONNX Runtime GenAI's model builder writes for LLaMA on
// CPU: ONNX Runtime's fused contrib ops instead of standard ones. Attention, rotary embedding and
// the KV cache are one com.microsoft.GroupQueryAttention per layer; RMSNorm is
// SimplifiedLayerNormalization, and each residual add is fused into the next norm
// (com.microsoft.SkipSimplifiedLayerNormalization). It is the strongest graph ONNX Runtime's own
// tools give such a model, so `bench e2e` measures MatMulNBits in it too. Same weights, initializer
// names, inputs and outputs as the standard layout (llama2c_graph.ts), minus position_ids:
// GroupQueryAttention derives each token's position from the attention mask.
import type { OnnxModel } from '../onnx/model';
import { W4A8Error } from '../util/errors';
import type { Progress } from '../util/progress';
import { GraphBuilder } from './graph_builder';
import { ropeTables } from '../native/tensor_layout';
import {
  finishDecoderModel, startDecoder, LINEAR_NAMES, LM_HEAD_NAME, OPSET, pastKeyName, pastValueName, presentKeyName, presentValueName,
  RMS_NORM_EPS, ROPE_THETA, type Llama2cWeights,
} from './llama2c_graph';

const MS = 'com.microsoft';
/** GroupQueryAttention with rotary needs head sizes that are multiples of 16 (ONNX Runtime 1.30's CPU kernel). */
export const GENAI_HEAD_SIZE_MULTIPLE = 16;

export async function buildLlama2cGenaiModel(ckpt: Llama2cWeights, progress?: Progress, g = new GraphBuilder(), sourceLabel = 'llama2.c legacy v0 checkpoint'): Promise<OnnxModel> {
  const c = ckpt.config;
  if (c.headSize % GENAI_HEAD_SIZE_MULTIPLE !== 0) {
    throw new W4A8Error(`the genai layout needs a head size that is a multiple of ${GENAI_HEAD_SIZE_MULTIPLE} (ONNX Runtime's GroupQueryAttention with rotary); this model's is ${c.headSize}: use the standard layout`);
  }
  const { step, linear, embedded } = startDecoder(ckpt, g, progress, 'import llama2.c (ONNX Runtime GenAI layout)', false);

  // GroupQueryAttention's view of the mask: the last valid position per row (seqlens_k, int32) and
  // the total length (a scalar int32), as ORT GenAI's builder computes them.
  const seqlensK = g.op1('/attn_mask', 'Cast', [
    g.op1('/attn_mask', 'Sub', [g.op1('/attn_mask', 'ReduceSum', ['attention_mask', g.addInt64('const.axes_1', [1])], { keepdims: 0 }), g.addInt64('const.one_scalar', [1], [])]),
  ], { to: 6 });
  const totalLen = g.op1('/attn_mask', 'Cast', [
    g.op1('/attn_mask', 'Gather', [g.op1('/attn_mask', 'Shape', ['attention_mask']), g.addInt64('const.one_scalar', [1], [])], { axis: 0 }),
  ], { to: 6 });

  // run.c rotates the pairs (2i, 2i+1) of every head: GroupQueryAttention's interleaved rotary,
  // with the same [positions, head size / 2] tables.
  const tables = await ropeTables(c.seqLen, c.headSize, ROPE_THETA);
  g.addFloat('rope.cos', [c.seqLen, c.headSize / 2], tables.cos);
  g.addFloat('rope.sin', [c.seqLen, c.headSize / 2], tables.sin);
  step('rope tables');

  const norm = (scope: string, input: string, weightName: string, data: Float32Array): string => {
    g.addFloat(weightName, [c.dim], data);
    return g.op1(scope, 'SimplifiedLayerNormalization', [input, weightName], { axis: -1, epsilon: RMS_NORM_EPS });
  };
  // residual + delta, normalized: [normalized, the sum (the new residual)].
  const skipNorm = (scope: string, delta: string, residual: string, weightName: string, data: Float32Array): [string, string] => {
    g.addFloat(weightName, [c.dim], data);
    const sum = `${scope}/residual_sum`;
    const [y] = g.op(scope, 'SkipSimplifiedLayerNormalization', [delta, residual, weightName], { epsilon: RMS_NORM_EPS }, [`${scope}/output_0`, '', '', sum], MS);
    return [y, sum];
  };

  let residual = embedded;
  let pending: string | undefined; // the last layer's MLP output, not yet added to the residual
  for (let l = 0; l < c.nLayers; l++) {
    const p = `/layers.${l}`;
    let xa: string;
    if (pending === undefined) xa = norm(`${p}/attn_norm`, residual, `layers.${l}.attn_norm.weight`, ckpt.read('rms_att_weight', l));
    else [xa, residual] = skipNorm(`${p}/attn_norm`, pending, residual, `layers.${l}.attn_norm.weight`, ckpt.read('rms_att_weight', l));
    step(`layers.${l}.attn_norm.weight`);
    const q = await linear(`${p}/attn/q_proj`, xa, LINEAR_NAMES.wq(l), 'wq', l);
    const k = await linear(`${p}/attn/k_proj`, xa, LINEAR_NAMES.wk(l), 'wk', l);
    const v = await linear(`${p}/attn/v_proj`, xa, LINEAR_NAMES.wv(l), 'wv', l);
    const [ctx] = g.op(`${p}/attn`, 'GroupQueryAttention', [q, k, v, pastKeyName(l), pastValueName(l), seqlensK, totalLen, 'rope.cos', 'rope.sin'], {
      num_heads: c.nHeads, kv_num_heads: c.nKvHeads, do_rotary: 1, rotary_interleaved: 1, // scale: 1/sqrt(head size), the default
    }, [`${p}/attn/GroupQueryAttention_output_0`, presentKeyName(l), presentValueName(l)], MS);
    const attnOut = await linear(`${p}/attn/o_proj`, ctx, LINEAR_NAMES.wo(l), 'wo', l);

    let xf: string;
    [xf, residual] = skipNorm(`${p}/ffn_norm`, attnOut, residual, `layers.${l}.ffn_norm.weight`, ckpt.read('rms_ffn_weight', l));
    step(`layers.${l}.ffn_norm.weight`);
    const gate = await linear(`${p}/mlp/gate_proj`, xf, LINEAR_NAMES.w1(l), 'w1', l);
    const up = await linear(`${p}/mlp/up_proj`, xf, LINEAR_NAMES.w3(l), 'w3', l);
    const silu = g.op1(`${p}/mlp`, 'Mul', [gate, g.op1(`${p}/mlp`, 'Sigmoid', [gate])]);
    pending = await linear(`${p}/mlp/down_proj`, g.op1(`${p}/mlp`, 'Mul', [silu, up]), LINEAR_NAMES.w2(l), 'w2', l);
  }

  const [xn] = skipNorm('/norm', pending!, residual, 'norm.weight', ckpt.read('rms_final_weight'));
  await linear('/lm_head', xn, LM_HEAD_NAME, c.sharedClassifier ? 'token_embedding_table' : 'wcls', 0, 'logits');
  progress?.stop();
  return finishDecoderModel(g, c, sourceLabel, [{ domain: '', version: OPSET }, { domain: MS, version: 1 }]);
}
