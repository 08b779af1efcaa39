// Sweep grids: a JSON list of configurations, or the preset of issue 3 (rtn/awq/gptq x
// int4-asym/int4-sym/fp4 x g32/per-channel x activations none/int8/fp8, all through `sim`).
import * as fs from 'node:fs';
import { UsageError } from '../util/errors';
import { resolveConfig, type ExportFormat, type QuantConfig, EXPORT_FORMATS } from '../quant/config';
import { checkExportSupports } from '../export/compat';

export interface SweepEntry {
  config: QuantConfig;
  format: ExportFormat;
}

interface JsonEntry {
  method?: string;
  wformat?: string;
  group?: number;
  grouping?: string;
  sym?: boolean;
  aformat?: string;
  format?: string;
  actOrder?: boolean;
  pow2Scales?: boolean;
}

export function entryFromJson(e: JsonEntry, where: string): SweepEntry {
  if (typeof e !== 'object' || e === null) throw new UsageError(`${where}: each configuration must be an object`);
  const format = (e.format ?? 'sim') as ExportFormat;
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`${where}: format must be one of ${EXPORT_FORMATS.join(', ')}`);
  // The sweep measures perplexity in ONNX Runtime, which cannot run the native container's W4A8Linear nodes.
  if (format === 'native') throw new UsageError(`${where}: format native runs on the w4a8 CPU kernels, not in ONNX Runtime; the sweep needs sim, matmulnbits or qdq`);
  const config = resolveConfig({
    method: e.method as QuantConfig['method'],
    wformat: e.wformat as QuantConfig['wformat'],
    groupSize: e.group,
    grouping: e.grouping as QuantConfig['grouping'],
    symmetric: e.sym,
    aformat: e.aformat as QuantConfig['aformat'],
    actOrder: e.actOrder,
    pow2Scales: e.pow2Scales,
  });
  checkExportSupports(format, config);
  return { config, format };
}

export function loadSweepConfigs(file: string): SweepEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--configs ${file}: cannot read a JSON list of configurations (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new UsageError(`--configs ${file} must hold a non-empty JSON array of configurations`);
  return parsed.map((e, i) => entryFromJson(e as JsonEntry, `--configs ${file} entry ${i}`));
}

/** The 54 simulated configurations of issue 3. */
export function issue3Grid(): SweepEntry[] {
  const out: SweepEntry[] = [];
  for (const method of ['rtn', 'awq', 'gptq'] as const) {
    for (const [wformat, symmetric] of [['int4', false], ['int4', true], ['fp4', true]] as const) {
      for (const groupSize of [32, 0]) {
        for (const aformat of ['none', 'int8', 'fp8'] as const) {
          out.push({ config: resolveConfig({ method, wformat, symmetric, groupSize, aformat, grouping: 'oc' }), format: 'sim' });
        }
      }
    }
  }
  return out;
}

/** Follow-ups of the preset once the best method is known: ic/auto grouping, and the stock-ORT exports. */
export function issue3FollowUps(bestMethod: QuantConfig['method']): SweepEntry[] {
  const base = { method: bestMethod, wformat: 'int4' as const, symmetric: false, groupSize: 32 };
  const out: SweepEntry[] = [];
  // ic: the best method with groups along N; auto: per layer (per input group for AWQ), the lower
  // calibration error of the method along K and along N.
  for (const grouping of ['ic', 'auto'] as const) {
    for (const aformat of ['none', 'int8'] as const) out.push({ config: resolveConfig({ ...base, grouping, aformat }), format: 'sim' });
  }
  for (const format of ['matmulnbits', 'qdq'] as const) {
    for (const aformat of ['none', 'int8'] as const) out.push({ config: resolveConfig({ ...base, grouping: 'oc', aformat }), format });
  }
  return out;
}
