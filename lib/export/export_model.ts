// Writes a quantization into a model (in place; the caller loaded a fresh copy): AWQ input
// scalings first, then the per-token activation fake-quant (sim only), then each layer's weight
// in the chosen format, then the opset imports those ops need.
import type { SideFileWriter } from '../onnx/side_writer';
import { DataType } from '../onnx/dtype';
import type { OnnxModel } from '../onnx/model';
import { writeSessionConfig } from '../onnx/session_config';
import type { ExportFormat, QuantConfig } from '../quant/config';
import type { QuantizedLayer, QuantizedModelParts } from '../quant/types';
import { actQuantGraph, actQuantMinOpset } from './act_quant_graph';
import { defaultOpset, ensureOpset, firstInGraph, insertBefore, rewireInputs, uniqueName } from './graph_edit';
import { fuseDecoder } from './fuse_decoder';
import { applyInputScalings } from './input_scaling';
import { addCompensationBranch } from './compensation';
import { addFusedCompensation } from './compensation_fused';
import { upgradeDefaultOpset } from './opset_upgrade';
import { hasFloat16, widenFloat16 } from './widen_float16';
import { replaceWithDequantizeLinear, replaceWithDequantized, replaceWithMatMulNBits, replaceWithW4A8MatMul, W4A8_DOMAIN } from './weights';

export interface ExportInfo {
  format: ExportFormat;
  /** Set when the default opset had to be raised (the model was re-checked in ORT). */
  opsetRaisedFrom?: number;
  opset: number;
  /** ORT session config entries needed to run the model as intended. */
  sessionConfig?: Record<string, string>;
  notes: string[];
}

/** ORT rewrites QDQ int4 DequantizeLinear -> MatMul into MatMulNBits with accuracy_level 4 (int8 activations) at load; this entry keeps it exact. */
export const QDQ_EXACT_SESSION_CONFIG = { qdq_matmulnbits_accuracy_level: '0' };

/**
 * Replaces one layer's weight by its quantized form now (a streamed quantization calls it as each
 * layer is done, then drops the arrays); exportQuantized skips the layers marked exported.
 */
export async function exportLayerWeight(model: OnnxModel, q: QuantizedLayer, format: ExportFormat, config: QuantConfig): Promise<void> {
  if (format === 'sim') await replaceWithDequantized(model, q);
  else if (format === 'matmulnbits') replaceWithMatMulNBits(model, q, config.aformat);
  else if (format === 'qdq') await replaceWithDequantizeLinear(model, q);
  else replaceWithW4A8MatMul(model, q, config);
  q.exported = true;
}

export interface ExportOptions {
  /** w4a8: also fuse the decoder's attention and RMSNorms into com.w4a8 nodes (fuse_decoder.ts; default true). */
  fuseDecoder?: boolean;
  /** w4a8 with fuseDecoder: also merge q|k|v and gate|up W4A8MatMuls into one node each (default true; adapters cannot attach to merged layers). */
  mergeProjections?: boolean;
  /** w4a8 with fuseDecoder: run an fp16 graph in fp32 so that it can be fused (widen_float16.ts; default true). */
  widenFloat16?: boolean;
  /** A streamed export's side file (fuse_decoder.ts merges the projections it holds back to back). */
  sideWriter?: SideFileWriter;
}

export async function exportQuantized(model: OnnxModel, parts: QuantizedModelParts, format: ExportFormat, options: ExportOptions = {}): Promise<ExportInfo> {
  const notes: string[] = [];
  const typeOf = new Map(parts.layers.map((q) => [q.layer.input, q.layer.dataType]));
  const elemTypeOf = (input: string) => typeOf.get(input) ?? DataType.FLOAT;
  const readsNow = await applyInputScalings(model, parts.scalings, parts.layers, elemTypeOf);

  const aformat = parts.config.aformat;
  let opsetRaisedFrom: number | undefined;
  const raise = (v: number) => {
    const r = upgradeDefaultOpset(model, v);
    if (r && opsetRaisedFrom === undefined) opsetRaisedFrom = r.from;
  };

  if (format === 'sim' && aformat !== 'none') {
    raise(actQuantMinOpset(aformat));
    const opset = defaultOpset(model);
    for (const [original, current] of readsNow) {
      const nodes = parts.layers.filter((q) => q.layer.input === original).map((q) => q.layer.node);
      if (nodes.length === 0) continue;
      const g = actQuantGraph(current, elemTypeOf(original), aformat, uniqueName(model, `${current}/act_${aformat}`), opset);
      insertBefore(model, firstInGraph(model, nodes), g.nodes);
      for (const t of g.initializers) model.proto.graph!.initializer.push(t);
      rewireInputs(nodes, current, g.output);
    }
  }

  for (const q of parts.layers) if (!q.exported) await exportLayerWeight(model, q, format, parts.config);
  // Corrections read the activation before its fake-quant (after AWQ's scaling, where C was fitted).
  // w4a8 fuses them into its W4A8MatMul node (compensation_fused.ts).
  for (const q of parts.layers) {
    if (!q.compensation) continue;
    const reads = readsNow.get(q.layer.input) ?? q.layer.input;
    if (format === 'w4a8') await addFusedCompensation(model, q, reads, parts.config);
    else addCompensationBranch(model, q, reads);
  }

  let sessionConfig: Record<string, string> | undefined;
  if (format === 'matmulnbits') {
    ensureOpset(model, 'com.microsoft', 1);
    if (aformat === 'int8') notes.push('MatMulNBits accuracy_level 4: ORT quantizes activations to int8 per (token, block of K), not per token');
  }
  if (format === 'qdq') {
    raise(21);
    if (aformat === 'none') {
      sessionConfig = { ...QDQ_EXACT_SESSION_CONFIG };
      // Carried in the model: every w4a8 command that opens it applies it (lib/ort/session.ts).
      writeSessionConfig(model.proto, sessionConfig);
      notes.push(
        "ONNX Runtime turns DequantizeLinear(int4) -> MatMul into MatMulNBits with accuracy_level 4 at load, i.e. int8 activations; w4a8 applies session option extra.session.qdq_matmulnbits_accuracy_level='0' (recorded in the model's metadata_props) to keep activations in float; other runtimes must set it too",
      );
    } else {
      notes.push('int8 activations come from ONNX Runtime itself: at load it rewrites DequantizeLinear(int4) -> MatMul into MatMulNBits with accuracy_level 4');
    }
  }
  if (format === 'w4a8') {
    ensureOpset(model, W4A8_DOMAIN, 1);
    notes.push(`${W4A8_DOMAIN}.W4A8MatMul runs on the w4a8 CPU kernels inside ONNX Runtime: w4a8 eval/generate open it with the addon's session (--engine w4a8); other ORT users register libw4a8_ort.so`);
    if ((options.fuseDecoder ?? true) && aformat === 'fp8') {
      // E4M3 keeps 3 mantissa bits: the fused ops' float-rounding differences flip its roundings and
      // move stories260K's perplexity ~0.08 % from the sim export (20000 tokens); unfused it is exact.
      notes.push('decoder not fused: fp8 activations keep the standard graph, which matches the sim export exactly');
    } else if (options.fuseDecoder ?? true) {
      if (hasFloat16(model)) {
        if (options.widenFloat16 ?? true) {
          const w = widenFloat16(model);
          notes.push(`fp16 graph widened to fp32 for the fused kernels: its cache, logits and other activations are fp32 now` +
            (w.gatherTables > 0 ? ` (${w.gatherTables} embedding table(s) stay fp16, their rows cast after the Gather)` : '') +
            '; --no-widen-fp16 keeps fp16');
        } else {
          notes.push('fp16 graph kept fp16 (--no-widen-fp16): its decoder stays unfused');
        }
      }
      const f = fuseDecoder(model, { mergeProjections: options.mergeProjections, sideWriter: options.sideWriter });
      if (f.attention + f.rmsNorm + f.projections > 0) {
        notes.push(`decoder fused: ${f.attention} attention block(s) as ${W4A8_DOMAIN}.CachedAttention, ${f.rmsNorm} RMSNorm(s) as ${W4A8_DOMAIN}.RmsNorm, ` +
          `${f.projections} group(s) of projections merged (q|k|v, gate|up with SwiGLU)` +
          (f.attentionSkipped > 0 ? `; ${f.attentionSkipped} attention block(s) did not match the pattern and keep their own ops` : '') +
          (f.projectionsSkipped > 0 ? `; ${f.projectionsSkipped} group(s) left apart (weights already in external data)` : ''));
      } else {
        notes.push(`decoder not fused: ${f.reason ?? 'no attention block or RMSNorm of the llama2.c importer\'s patterns (standard or ONNX Runtime GenAI layout) found'}`);
      }
    }
  }
  if (opsetRaisedFrom !== undefined) notes.push(`default opset raised from ${opsetRaisedFrom} to ${defaultOpset(model)}`);
  return { format, opsetRaisedFrom, opset: defaultOpset(model), sessionConfig, notes };
}
