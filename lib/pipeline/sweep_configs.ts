// Sweep grids: a JSON list of configurations, each checked against its export format before any work.
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
  clipSearch?: boolean;
  pow2Scales?: boolean;
  /** Error correction: "lorc", "lorc-aware" or "kron-aware", with compensateBudget (fraction of K*N) or compensateRank. */
  compensate?: string;
  compensateBudget?: number;
  compensateRank?: number;
}

export function entryFromJson(e: JsonEntry, where: string): SweepEntry {
  if (typeof e !== 'object' || e === null) throw new UsageError(`${where}: each configuration must be an object`);
  const format = (e.format ?? 'sim') as ExportFormat;
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`${where}: format must be one of ${EXPORT_FORMATS.join(', ')}`);
  const config = resolveConfig({
    method: e.method as QuantConfig['method'],
    wformat: e.wformat as QuantConfig['wformat'],
    groupSize: e.group,
    grouping: e.grouping as QuantConfig['grouping'],
    symmetric: e.sym,
    aformat: e.aformat as QuantConfig['aformat'],
    actOrder: e.actOrder,
    clipSearch: e.clipSearch,
    pow2Scales: e.pow2Scales,
    compensate: e.compensate as QuantConfig['compensate'],
    compensateBudget: e.compensateBudget,
    compensateRank: e.compensateRank,
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
