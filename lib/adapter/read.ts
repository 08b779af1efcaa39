// Reads an adapter file into the in-memory form (types.ts): PEFT LoKr, or Compacter/PHM in the
// key layout README.md documents. Shapes are checked here against each other; whether they fit
// the model's MatMuls is checked where the adapter is attached.
//
// LoKr (PEFT tuners/lokr): for a Linear weight [out][in], delta W = (alpha / r) * kron(w1, w2) with
// w1 [out1][in1] (lokr_w1, or lokr_w1_a [out1][r] @ lokr_w1_b [r][in1]) and w2 [out2][in2]
// (lokr_w2, or lokr_w2_a @ lokr_w2_b); out = out1 out2, in = in1 in2. rank_dropout and
// module_dropout act in training only. rank_pattern / alpha_pattern override r / alpha per module.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import { readSafetensors, type SafetensorsFile, type SafetensorsTensor } from './safetensors';
import type { Adapter, AdapterDelta, AdapterFactor, KroneckerTerm } from './types';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
const PEFT_PREFIX = 'base_model.model.';

export interface AdapterConfig {
  peft_type?: string;
  r?: number;
  alpha?: number;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  /** Compacter: the factor delta W is multiplied by (default 1). */
  scaling?: number;
}

function locate(adapter: string): { weights: string; config?: string } {
  let st: fs.Stats;
  try {
    st = fs.statSync(adapter);
  } catch {
    throw new W4A8Error(`adapter ${adapter} not found; give a folder with ${ADAPTER_WEIGHTS_FILE} and ${ADAPTER_CONFIG_FILE}, or a .safetensors file`);
  }
  const dir = st.isDirectory() ? adapter : path.dirname(adapter);
  const weights = st.isDirectory() ? path.join(adapter, ADAPTER_WEIGHTS_FILE) : adapter;
  const config = path.join(dir, ADAPTER_CONFIG_FILE);
  return { weights, config: fs.existsSync(config) ? config : undefined };
}

function readConfig(file: string | undefined): AdapterConfig {
  if (!file) return {};
  let c: unknown;
  try {
    c = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new W4A8Error(`${file} is not JSON: ${(e as Error).message}`);
  }
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new W4A8Error(`${file} is not a JSON object`);
  return c as AdapterConfig;
}

function matrix(file: string, t: SafetensorsTensor | undefined, rank: number, key: string): SafetensorsTensor {
  if (!t) throw new W4A8Error(`${file}: tensor "${key}" is missing`);
  if (t.shape.length !== rank || t.shape.some((d) => d === 0)) throw new W4A8Error(`${file}: tensor "${key}" has shape [${t.shape.join(', ')}]; expected ${rank} non-zero dimensions`);
  return t;
}

/** One factor: `key` whole, or `key_a` @ `key_b`. */
function lokrFactor(file: string, st: SafetensorsFile, key: string): AdapterFactor {
  const whole = st.tensors.get(key);
  if (whole) {
    const t = matrix(file, whole, 2, key);
    return { kind: 'dense', rows: t.shape[0], cols: t.shape[1], values: t.values };
  }
  const a = st.tensors.get(`${key}_a`);
  const b = st.tensors.get(`${key}_b`);
  if (!a && !b) throw new W4A8Error(`${file}: "${key}" is missing; a LoKr module needs ${key} or ${key}_a and ${key}_b`);
  const ta = matrix(file, a, 2, `${key}_a`);
  const tb = matrix(file, b, 2, `${key}_b`);
  if (ta.shape[1] !== tb.shape[0]) throw new W4A8Error(`${file}: ${key}_a [${ta.shape.join(', ')}] and ${key}_b [${tb.shape.join(', ')}] do not multiply (inner sizes differ)`);
  return { kind: 'product', rows: ta.shape[0], cols: tb.shape[1], rank: ta.shape[1], left: ta.values, right: tb.values };
}

/** PEFT matches pattern keys as a suffix of the module name at a dot boundary. */
function patternValue(patterns: Record<string, number> | undefined, module: string): number | undefined {
  for (const [k, v] of Object.entries(patterns ?? {})) if (module === k || module.endsWith(`.${k}`)) return v;
  return undefined;
}

function positive(file: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new W4A8Error(`${file}: ${what} is ${JSON.stringify(v)}; expected a positive number`);
  return v;
}

function moduleOf(key: string, suffix: string): string {
  const m = key.slice(0, key.length - suffix.length);
  return m.startsWith(PEFT_PREFIX) ? m.slice(PEFT_PREFIX.length) : m;
}

function readLokr(file: string, configFile: string, config: AdapterConfig, st: SafetensorsFile): Adapter {
  const suffixes = ['.lokr_w1', '.lokr_w1_a', '.lokr_w1_b', '.lokr_w2', '.lokr_w2_a', '.lokr_w2_b', '.lokr_t2'];
  const modules = new Map<string, string>();
  for (const key of st.tensors.keys()) {
    const s = suffixes.find((x) => key.endsWith(x));
    if (!s) throw new W4A8Error(`${file}: tensor "${key}" is not a LoKr parameter (expected keys ending in ${suffixes.join(', ')})`);
    if (s === '.lokr_t2') throw new W4A8Error(`${file}: "${key}" is a Tucker core (lokr_t2), which PEFT makes for Conv layers only; a MatMul takes lokr_w2 or lokr_w2_a/lokr_w2_b`);
    modules.set(moduleOf(key, s), key.slice(0, key.length - s.length));
  }
  if (modules.size === 0) throw new W4A8Error(`${file} holds no LoKr tensors`);
  const deltas: AdapterDelta[] = [];
  for (const [module, prefix] of modules) {
    const w1 = lokrFactor(file, st, `${prefix}.lokr_w1`);
    const w2 = lokrFactor(file, st, `${prefix}.lokr_w2`);
    const r = positive(configFile, `r for ${module}`, patternValue(config.rank_pattern, module) ?? config.r);
    const alpha = positive(configFile, `alpha for ${module}`, patternValue(config.alpha_pattern, module) ?? config.alpha);
    deltas.push({ module, outFeatures: w1.rows * w2.rows, inFeatures: w1.cols * w2.cols, scale: alpha / r, terms: [{ a: w1, b: w2 }] });
  }
  return { kind: 'lokr', source: file, deltas };
}

function readCompacter(file: string, configFile: string, config: AdapterConfig, st: SafetensorsFile): Adapter {
  const scale = config.scaling === undefined ? 1 : positive(configFile, 'scaling', config.scaling);
  const suffixes = ['.phm_weight', '.phm_weight_left', '.phm_weight_right', '.phm_rule'];
  const modules = new Map<string, string>();
  for (const key of st.tensors.keys()) {
    if (key === 'phm_rule') continue;
    const s = suffixes.find((x) => key.endsWith(x));
    if (!s) throw new W4A8Error(`${file}: tensor "${key}" is not a Compacter parameter (expected phm_rule or keys ending in ${suffixes.join(', ')})`);
    if (s !== '.phm_rule') modules.set(moduleOf(key, s), key.slice(0, key.length - s.length));
  }
  if (modules.size === 0) throw new W4A8Error(`${file} holds no Compacter layers (<module>.phm_weight or <module>.phm_weight_left/_right)`);
  // Views of one rule tensor are made once, so every layer that shares it shares the same arrays.
  const ruleViews = new Map<SafetensorsTensor, AdapterFactor[]>();
  const rule = (t: SafetensorsTensor, key: string): AdapterFactor[] => {
    let views = ruleViews.get(t);
    if (!views) {
      const [terms, n, n2] = matrix(file, t, 3, key).shape;
      if (n !== n2) throw new W4A8Error(`${file}: "${key}" has shape [${t.shape.join(', ')}]; expected [terms, n, n]`);
      views = Array.from({ length: terms }, (_, i) => ({ kind: 'dense' as const, rows: n, cols: n, values: t.values.subarray(i * n * n, (i + 1) * n * n) }));
      ruleViews.set(t, views);
    }
    return views;
  };
  const deltas: AdapterDelta[] = [];
  for (const [module, prefix] of modules) {
    const own = st.tensors.get(`${prefix}.phm_rule`);
    const ruleKey = own ? `${prefix}.phm_rule` : 'phm_rule';
    const a = rule(matrix(file, own ?? st.tensors.get('phm_rule'), 3, ruleKey), ruleKey);
    const whole = st.tensors.get(`${prefix}.phm_weight`);
    const bs: AdapterFactor[] = [];
    if (whole) {
      const [terms, rows, cols] = matrix(file, whole, 3, `${prefix}.phm_weight`).shape;
      if (terms !== a.length) throw new W4A8Error(`${file}: "${prefix}.phm_weight" has ${terms} terms but ${ruleKey} has ${a.length}`);
      for (let i = 0; i < terms; i++) bs.push({ kind: 'dense', rows, cols, values: whole.values.subarray(i * rows * cols, (i + 1) * rows * cols) });
    } else {
      const l = matrix(file, st.tensors.get(`${prefix}.phm_weight_left`), 3, `${prefix}.phm_weight_left`);
      const r = matrix(file, st.tensors.get(`${prefix}.phm_weight_right`), 3, `${prefix}.phm_weight_right`);
      const [terms, rows, rank] = l.shape;
      if (r.shape[0] !== terms || r.shape[1] !== rank || terms !== a.length) {
        throw new W4A8Error(`${file}: "${prefix}.phm_weight_left" [${l.shape.join(', ')}] and _right [${r.shape.join(', ')}] do not fit each other or the ${a.length} terms of ${ruleKey}`);
      }
      const cols = r.shape[2];
      for (let i = 0; i < terms; i++) {
        bs.push({ kind: 'product', rows, cols, rank, left: l.values.subarray(i * rows * rank, (i + 1) * rows * rank), right: r.values.subarray(i * rank * cols, (i + 1) * rank * cols) });
      }
    }
    const terms: KroneckerTerm[] = a.map((ai, i) => ({ a: ai, b: bs[i] }));
    deltas.push({ module, outFeatures: a[0].rows * bs[0].rows, inFeatures: a[0].cols * bs[0].cols, scale, terms });
  }
  return { kind: 'compacter', source: file, deltas };
}

/**
 * Reads a LoKr or Compacter adapter: a folder holding adapter_model.safetensors and
 * adapter_config.json, or a .safetensors file (its adapter_config.json beside it). The kind comes
 * from the config's peft_type (LOKR, COMPACTER), else from the tensor names.
 */
export function readAdapter(adapter: string): Adapter {
  const { weights, config: configFile } = locate(adapter);
  const config = readConfig(configFile);
  const st = readSafetensors(weights);
  const type = typeof config.peft_type === 'string' ? config.peft_type.toUpperCase()
    : [...st.tensors.keys()].some((k) => k.includes('.lokr_')) ? 'LOKR' : 'COMPACTER';
  const cfgName = configFile ?? path.join(path.dirname(weights), ADAPTER_CONFIG_FILE);
  if (type === 'LOKR') {
    if (!configFile) throw new W4A8Error(`LoKr adapter ${weights} needs ${cfgName} (r and alpha give the scale alpha / r)`);
    return readLokr(weights, cfgName, config, st);
  }
  if (type === 'COMPACTER') return readCompacter(weights, cfgName, config, st);
  throw new W4A8Error(`${cfgName}: peft_type ${config.peft_type} is not supported; adapter attach takes LOKR or COMPACTER`);
}
