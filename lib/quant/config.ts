// One quantization configuration: how weights and activations are quantized. Shared by
// `quantize`, `sweep` and the reports; validated here once, with messages that name the fix.
import { UsageError } from '../util/errors';
import { GROUP_SIZES as BLOCK_SIZES, PER_CHANNEL } from '../native/formats';

/** awq+gptq: AWQ's activation-aware input scaling first, then GPTQ on diag(s) W with the scaled activations' Hessian. */
export const METHODS = ['rtn', 'awq', 'gptq', 'awq+gptq'] as const;
export const WEIGHT_FORMATS = ['int4', 'fp4'] as const;
export const GROUPINGS = ['oc', 'ic', 'auto'] as const;
export const ACT_FORMATS = ['int8', 'fp8', 'none'] as const;
export const EXPORT_FORMATS = ['matmulnbits', 'qdq', 'sim', 'w4a8'] as const;
/** Error compensation after the weight method (lib/quant/compensate.ts). */
export const COMPENSATIONS = ['none', 'lorc', 'lorc-aware', 'kron-aware'] as const;
/** How correction factors are stored: fp16, or int8 with one fp32 scale per row (low rank, --format w4a8). */
export const COMPENSATE_FACTORS = ['fp16', 'int8'] as const;
/** --group: a block size of the canonical layout (formats.ts), or 0 for one scale per output channel. */
export const GROUP_SIZES: readonly number[] = [...BLOCK_SIZES, PER_CHANNEL];

export type QuantMethod = (typeof METHODS)[number];
export type WeightFormatName = (typeof WEIGHT_FORMATS)[number];
/** oc: groups of consecutive input channels within one output channel (blocks along K, as MatMulNBits);
 *  ic: groups of consecutive output channels within one input channel; auto: per layer, the lower error. */
export type Grouping = (typeof GROUPINGS)[number];
export type ActFormat = (typeof ACT_FORMATS)[number];
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export type Compensation = (typeof COMPENSATIONS)[number];
export type CompensateFactors = (typeof COMPENSATE_FACTORS)[number];

export interface QuantConfig {
  method: QuantMethod;
  wformat: WeightFormatName;
  /** Group size; 0 = one group per output channel (per channel). */
  groupSize: number;
  grouping: Grouping;
  symmetric: boolean;
  pow2Scales: boolean;
  aformat: ActFormat;
  /** GPTQ: quantize columns in order of decreasing Hessian diagonal. */
  actOrder: boolean;
  /** GPTQ: choose each group's clip ratio by an MSE search (Hessian-diagonal weighted) instead of the full range. */
  clipSearch?: boolean;
  /** A correction C beside each quantized weight (absent = none). */
  compensate?: Exclude<Compensation, 'none'>;
  /** Extra parameters per layer as a fraction of K * N (fp16 factors); or a fixed rank / term count. */
  compensateBudget?: number;
  compensateRank?: number;
  /** int8 low-rank factors with per-row scales (formats.h Int8Rows; fused --format w4a8 only); absent = fp16. */
  compensateFactors?: 'int8';
}

export const DEFAULT_CONFIG: QuantConfig = {
  method: 'rtn',
  wformat: 'int4',
  groupSize: 32,
  grouping: 'oc',
  symmetric: false,
  pow2Scales: false,
  aformat: 'int8',
  actOrder: false,
};

function oneOf<T extends string>(list: readonly T[], value: unknown, what: string): T {
  if (typeof value !== 'string' || !(list as readonly string[]).includes(value)) {
    throw new UsageError(`${what} must be one of ${list.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Methods that run GPTQ (and so take --act-order, --clip-search and need the calibration Hessian). */
export function usesGptq(method: QuantMethod): boolean {
  return method === 'gptq' || method === 'awq+gptq';
}

/** Completes and checks a partial configuration. fp4 is symmetric by construction; int4 defaults to asymmetric. */
export function resolveConfig(partial: Partial<QuantConfig> & { symmetric?: boolean }): QuantConfig {
  const method = oneOf(METHODS, partial.method ?? DEFAULT_CONFIG.method, 'method');
  const wformat = oneOf(WEIGHT_FORMATS, partial.wformat ?? DEFAULT_CONFIG.wformat, 'weight format (--wformat)');
  const grouping = oneOf(GROUPINGS, partial.grouping ?? DEFAULT_CONFIG.grouping, 'grouping (--grouping)');
  const aformat = oneOf(ACT_FORMATS, partial.aformat ?? DEFAULT_CONFIG.aformat, 'activation format (--aformat)');
  const groupSize = partial.groupSize ?? DEFAULT_CONFIG.groupSize;
  if (!GROUP_SIZES.includes(groupSize)) {
    throw new UsageError(`group size (--group) must be one of ${GROUP_SIZES.join(', ')} (0 = per channel); got ${groupSize}`);
  }
  if (wformat === 'fp4' && partial.symmetric === false) {
    throw new UsageError('fp4 weights are symmetric (a sign bit, no zero point); drop --asym or use --wformat int4');
  }
  const symmetric = wformat === 'fp4' ? true : (partial.symmetric ?? DEFAULT_CONFIG.symmetric);
  if (partial.actOrder && !usesGptq(method)) {
    throw new UsageError(`--act-order applies to --method gptq or awq+gptq only; got --method ${method}`);
  }
  if (partial.clipSearch && !usesGptq(method)) {
    throw new UsageError(`--clip-search applies to --method gptq or awq+gptq only (AWQ searches its own clips); got --method ${method}`);
  }
  const out: QuantConfig = {
    method,
    wformat,
    groupSize,
    grouping,
    symmetric,
    pow2Scales: partial.pow2Scales ?? false,
    aformat,
    actOrder: partial.actOrder ?? false,
  };
  if (partial.clipSearch) out.clipSearch = true;
  const comp = oneOf(COMPENSATIONS, partial.compensate ?? 'none', 'compensation (--compensate)');
  const budget = partial.compensateBudget;
  const rank = partial.compensateRank;
  const factors = oneOf(COMPENSATE_FACTORS, partial.compensateFactors ?? 'fp16', 'factor storage (--compensate-factors)');
  if (comp === 'none') {
    if (budget !== undefined || rank !== undefined) throw new UsageError('--compensate-budget and --compensate-rank need --compensate lorc|lorc-aware|kron-aware');
    if (factors !== 'fp16') throw new UsageError('--compensate-factors int8 needs --compensate lorc|lorc-aware');
    return out;
  }
  if (factors === 'int8' && comp === 'kron-aware') {
    throw new UsageError('--compensate-factors int8 applies to the low-rank corrections (lorc, lorc-aware); kron-aware factors stay fp16');
  }
  if ((budget === undefined) === (rank === undefined)) {
    throw new UsageError(`--compensate ${comp} needs exactly one of --compensate-budget <fraction of each layer's parameters, e.g. 0.05> or --compensate-rank <r>`);
  }
  if (budget !== undefined && !(typeof budget === 'number' && budget > 0 && budget <= 1)) {
    throw new UsageError(`--compensate-budget must be a fraction in (0, 1] of each layer's K * N parameters (0.05 = 5 %); got ${JSON.stringify(budget)}`);
  }
  if (rank !== undefined && !(Number.isInteger(rank) && rank >= 1)) {
    throw new UsageError(`--compensate-rank must be a positive integer; got ${JSON.stringify(rank)}`);
  }
  out.compensate = comp;
  if (budget !== undefined) out.compensateBudget = budget;
  if (rank !== undefined) out.compensateRank = rank;
  if (factors === 'int8') out.compensateFactors = 'int8';
  return out;
}

/** A short stable label: "awq int4-asym g32 oc a8" (used as a table row and a JSON key). */
export function configLabel(c: QuantConfig): string {
  const w = c.wformat === 'fp4' ? 'fp4' : `int4-${c.symmetric ? 'sym' : 'asym'}`;
  const g = c.groupSize === PER_CHANNEL ? 'per-channel' : `g${c.groupSize}`;
  const a = c.aformat === 'none' ? 'A16' : c.aformat === 'int8' ? 'A8 int8' : 'A8 fp8';
  const comp = !c.compensate ? '' : `+${c.compensate} ${c.compensateBudget !== undefined ? `${+(c.compensateBudget * 100).toFixed(2)}%` : `r${c.compensateRank}`}${c.compensateFactors === 'int8' ? ' int8' : ''}`;
  const extras = [c.grouping !== 'oc' ? c.grouping : '', c.pow2Scales ? 'pow2' : '', c.actOrder ? 'act-order' : '', c.clipSearch ? 'clip-search' : '', comp].filter(Boolean);
  return [c.method, w, g, a, ...extras].join(' ');
}
