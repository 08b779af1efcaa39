// `adapter attach` onto a `--format w4a8` model, fused: each adapter delta whose layer is a
// com.w4a8.W4A8MatMul becomes that node's Kronecker factor inputs (kron_a / kron_b, positions 7, 8;
// native/include/w4a8/ort_op.h), computed in the same call as the quantized product, instead of a
// standard-op branch beside it. Layers that are not W4A8MatMul (a float lm_head) keep the branch.
// Factors are stored in fp32: the adapter's own precision, so fused and branch forms agree to
// rounding, and a serving session can feed other adapters' fp32 factors (adapter_slots.ts).
import type { Adapter } from '../adapter/types';
import type { OnnxModel } from '../onnx/model';
import { W4A8Error } from '../util/errors';
import { addAdapterBranches, matchAdapter, type AdapterTarget } from './adapter';
import { attachFusedFactors, fusedFactorsFromDelta } from './adapter_slots';
import { W4A8_KRON_INPUTS } from './compensation_fused';
import { uniqueName } from './graph_edit';

export type AdapterMode = 'fused' | 'branch';

/** Initializer suffixes of fused adapter factors: `<layer output>/adapter[_n]/fused_a`, `_b` (inspect lists them). */
export const FUSED_ADAPTER_SUFFIXES = { u: '/fused_u', v: '/fused_v', a: '/fused_a', b: '/fused_b' };

export interface AttachedTarget extends AdapterTarget {
  form: AdapterMode;
}

/** Why `t` cannot be fused into its W4A8MatMul ('' when it can). */
function fuseBlocker(t: AdapterTarget): string {
  const node = t.node;
  if (node.input[0] !== t.input) {
    return `its W4A8MatMul reads "${node.input[0]}" (after AWQ's explicit 1/s), while the adapter must read "${t.input}"`;
  }
  if ((node.input[W4A8_KRON_INPUTS[0]] ?? '') !== '') return `its W4A8MatMul's Kronecker inputs already hold "${node.input[W4A8_KRON_INPUTS[0]]}" (a kron-aware correction)`;
  const [a0, b0] = [t.delta.terms[0].a, t.delta.terms[0].b];
  const mixed = t.delta.terms.findIndex((x) => x.a.rows !== a0.rows || x.a.cols !== a0.cols || x.b.rows !== b0.rows || x.b.cols !== b0.cols);
  if (mixed > 0) return `its terms have different factor shapes (term ${mixed}), and the fused op takes one shape for all terms`;
  return '';
}

/**
 * Adds every delta of `adapter` to `model` (in place): fused into the W4A8MatMul inputs (mode
 * 'fused', the default for a w4a8 model) or as the standard-op branch ('branch', any model).
 * In fused mode a W4A8MatMul layer that cannot take the adapter is refused, naming why.
 */
export async function attachAdapterWithMode(model: OnnxModel, adapter: Adapter, mode: AdapterMode, prefix = 'adapter'): Promise<AttachedTarget[]> {
  const targets = matchAdapter(model, adapter);
  const fuse = (t: AdapterTarget) => mode === 'fused' && t.node.opType === 'W4A8MatMul';
  for (const t of targets.filter(fuse)) {
    const why = fuseBlocker(t);
    if (why) throw new W4A8Error(`adapter ${adapter.source}: module "${t.delta.module}" cannot be fused into "${t.node.name}": ${why}; attach it as standard ops with --adapter-mode branch`);
  }
  // One delta per node: two modules matching one layer would need both in one slot.
  const seen = new Set<string>();
  for (const t of targets.filter(fuse)) {
    if (seen.has(t.node.name)) throw new W4A8Error(`adapter ${adapter.source}: two modules match "${t.node.name}"; attach with --adapter-mode branch`);
    seen.add(t.node.name);
  }
  for (const t of targets.filter(fuse)) {
    const f = await fusedFactorsFromDelta(t.delta);
    attachFusedFactors(model, t.node, f, uniqueName(model, `${t.node.output[0]}/${prefix}`), 'float32', FUSED_ADAPTER_SUFFIXES);
  }
  addAdapterBranches(model, targets.filter((t) => !fuse(t)), prefix);
  return targets.map((t) => ({ ...t, form: fuse(t) ? 'fused' : 'branch' }));
}
