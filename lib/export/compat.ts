// Which quantization configurations each export format can carry. The check runs before any
// work, so an unsupported combination fails at once and nothing is written.
import { UsageError } from '../util/errors';
import type { ExportFormat, QuantConfig } from '../quant/config';

/** MatMulNBits / blocked DequantizeLinear block size for a layer: the group, or K rounded up to a power of two for per-channel. */
export function exportBlockSize(groupSize: number, k: number): number {
  if (groupSize > 0) return groupSize;
  let b = 16;
  while (b < k) b *= 2;
  return b;
}

/** Largest block size we emit: ONNX Runtime 1.30's CPU MatMulNBits returns zeros for block_size 512 (onnxruntime issue 28551). */
export const MAX_EXPORT_BLOCK = 256;

/** Throws a UsageError naming `--format sim` when `format` cannot represent `config`. */
export function checkExportSupports(format: ExportFormat, config: QuantConfig): void {
  if (format === 'sim') return;
  if (format === 'native') return checkNativeSupports(config);
  const why: string[] = [];
  if (config.wformat !== 'int4') why.push(`${config.wformat} weights (ONNX Runtime has no CPU kernel for FLOAT4E2M1)`);
  if (config.grouping !== 'oc') why.push(`--grouping ${config.grouping} (${format} stores groups along K only: use --grouping oc)`);
  if (config.aformat === 'fp8') why.push(`--aformat fp8 (${format} has no FP8 activation path)`);
  if (config.groupSize !== 0 && (config.groupSize < 16 || (config.groupSize & (config.groupSize - 1)) !== 0)) {
    why.push(`group ${config.groupSize} (needs a power of two >= 16)`);
  }
  if (why.length > 0) {
    throw new UsageError(`--format ${format} cannot carry ${why.join('; ')}; use --format sim to simulate this configuration with standard ops`);
  }
}

/** --format native runs on our CPU kernels: int4 or fp4 weights in K-blocks of 16..256, int8 or float activations. */
function checkNativeSupports(config: QuantConfig): void {
  const why: string[] = [];
  if (config.grouping !== 'oc') why.push(`--grouping ${config.grouping} (the CPU kernels take groups along K only: use --grouping oc)`);
  if (config.aformat === 'fp8') why.push('--aformat fp8 (the CPU kernels quantize activations to int8: use --aformat int8 or none)');
  if (why.length > 0) {
    throw new UsageError(`--format native cannot carry ${why.join('; ')}; use --format sim to simulate this configuration with standard ops`);
  }
}

/** Per-layer check for per-channel export (needs K known): refuses K whose power-of-two block exceeds what ORT handles. */
export function checkPerChannelBlock(format: ExportFormat, layer: string, k: number): void {
  // native stores per-channel weights as 128-wide blocks repeating the channel scale.
  if (format === 'sim' || format === 'native') return;
  const block = exportBlockSize(0, k);
  if (block > MAX_EXPORT_BLOCK) {
    throw new UsageError(
      `--format ${format}: per-channel layer "${layer}" has K=${k}, which needs block_size ${block}; ONNX Runtime's CPU MatMulNBits ` +
        `is wrong above ${MAX_EXPORT_BLOCK} (onnxruntime issue 28551). Use --group 128 or --format sim`,
    );
  }
}
