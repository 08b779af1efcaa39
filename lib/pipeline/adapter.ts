// `adapter attach`: reads a model (quantized or not) and an adapter, adds the adapter's terms to the
// matching layers (fused into W4A8MatMul's Kronecker inputs, or as standard ONNX ops beside the
// layer), and writes a new model (atomically, with the tokenizer beside it copied along); the inputs
// are never modified.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readAdapter } from '../adapter/read';
import type { AdapterKind } from '../adapter/types';
import { factorParams } from '../adapter/types';
import { attachAdapterWithMode, type AdapterMode } from '../export/adapter_fused';
import { hasExternalData, loadModel, saveModel } from '../onnx/model';
import { findTokenizerBeside } from '../tokenize/load';
import { UsageError } from '../util/errors';
import { OutputSet } from '../util/output_set';
import { readRegularFile } from '../util/regular_file';

export interface AttachAdapterOptions {
  /** The model to adapt (e.g. the output of `quantize`). */
  input: string;
  /** A folder with adapter_model.safetensors + adapter_config.json, or a .safetensors file. */
  adapter: string;
  output: string;
  /**
   * 'fused' (default): layers that are com.w4a8.W4A8MatMul nodes take the adapter as their Kronecker
   * factor inputs, computed in the same call; other layers get the standard-op branch. 'branch':
   * every layer gets the standard-op branch (stock ONNX Runtime runs it beside any layer).
   */
  mode?: AdapterMode;
}

export interface AttachedLayer {
  module: string;
  node: string;
  terms: number;
  /** Parameters of the layer's factors (Compacter's shared A_i counted in each layer). */
  params: number;
  scale: number;
  /** Fused into the node's inputs, or a standard-op branch beside it. */
  form: AdapterMode;
}

export interface AttachSummary {
  kind: AdapterKind;
  output: string;
  layers: AttachedLayer[];
}

function resolvedSame(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const sa = fs.statSync(a), sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

export async function attachAdapter(opts: AttachAdapterOptions): Promise<AttachSummary> {
  if (typeof opts.output !== 'string' || opts.output === '') throw new UsageError('give the output model with -o <out.onnx>');
  if (resolvedSame(opts.input, opts.output)) throw new UsageError(`the output ${opts.output} is the input model; inputs are never overwritten: choose another -o`);
  const mode = opts.mode ?? 'fused';
  if (mode !== 'fused' && mode !== 'branch') throw new UsageError(`adapter mode "${String(mode)}" is not fused or branch`);
  const adapter = readAdapter(opts.adapter);
  const model = loadModel(opts.input);
  const targets = await attachAdapterWithMode(model, adapter, mode);
  const outputs = new OutputSet(opts.output, { inputs: [opts.input] });
  try {
    saveModel(model, opts.output, { externalData: hasExternalData(model) ? 'always' : 'auto', into: outputs });
    const tokenizer = findTokenizerBeside(opts.input);
    if (tokenizer) {
      const dest = path.join(outputs.dir, path.basename(tokenizer));
      if (!resolvedSame(tokenizer, dest)) fs.writeFileSync(outputs.staged(outputs.add(dest, 'tokenizer')), readRegularFile(tokenizer, 'tokenizer'));
    }
    outputs.commit();
  } catch (err) {
    outputs.abort();
    throw err;
  }
  return {
    kind: adapter.kind,
    output: opts.output,
    layers: targets.map((t) => ({
      module: t.delta.module,
      node: t.node.name,
      terms: t.delta.terms.length,
      params: t.delta.terms.reduce((s, term) => s + factorParams(term.a) + factorParams(term.b), 0),
      scale: t.delta.scale,
      form: t.form,
    })),
  };
}
