// Which graph `import llama2c` writes: standard ONNX ops (any runtime; what `--format w4a8`'s fused
// decoder recognizes) or ONNX Runtime GenAI's layout of fused contrib ops.
import type { OnnxModel } from '../onnx/model';
import type { Progress } from '../util/progress';
import type { GraphBuilder } from './graph_builder';
import { buildLlama2cModel, type Llama2cWeights } from './llama2c_graph';
import { buildLlama2cGenaiModel } from './llama2c_graph_genai';

export const DECODER_LAYOUTS = ['standard', 'genai'] as const;
export type DecoderLayout = (typeof DECODER_LAYOUTS)[number];

export function checkDecoderLayout(layout: unknown): DecoderLayout {
  if (!(DECODER_LAYOUTS as readonly unknown[]).includes(layout)) throw new RangeError(`Expected layout to be one of ${DECODER_LAYOUTS.join(', ')} but received ${JSON.stringify(layout)}`);
  return layout as DecoderLayout;
}

export function buildLlama2cDecoder(layout: DecoderLayout, ckpt: Llama2cWeights, progress?: Progress, g?: GraphBuilder, sourceLabel?: string): Promise<OnnxModel> {
  return layout === 'genai' ? buildLlama2cGenaiModel(ckpt, progress, g, sourceLabel) : buildLlama2cModel(ckpt, progress, g, sourceLabel);
}
