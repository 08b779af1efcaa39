// Which quantization configurations each export format can carry. The check runs before any
// work, so an unsupported combination fails at once and nothing is written. Block sizes come from
// formats.ts; per-channel weights are stored as blocks of PER_CHANNEL_BLOCK_SIZE repeating the
// channel's scale, so every format carries them whatever K is.
import { UsageError } from '../util/errors';
import { GROUP_SIZES, PER_CHANNEL } from '../native/formats';
import type { ExportFormat, QuantConfig } from '../quant/config';

/** Throws a UsageError naming `--format sim` when `format` cannot represent `config`. */
export function checkExportSupports(format: ExportFormat, config: QuantConfig): void {
  if (config.compensateFactors === 'int8' && format !== 'w4a8') {
    throw new UsageError(`--compensate-factors int8 is read by W4A8MatMul only: use --format w4a8 (the ${format} export keeps fp16 factors)`);
  }
  if (format === 'sim') return;
  const why: string[] = [];
  if (config.groupSize !== PER_CHANNEL && !GROUP_SIZES.includes(config.groupSize)) {
    why.push(`group ${config.groupSize} (blocks are ${GROUP_SIZES.join(', ')}, or 0 for per channel)`);
  }
  if (format === 'w4a8') {
    // com.w4a8 W4A8MatMul on the CPU kernels: int4 or fp4 weights in K-blocks, int8, fp8 or float activations.
    if (config.grouping !== 'oc') why.push(`--grouping ${config.grouping} (the CPU kernels take groups along K only: use --grouping oc)`);
  } else {
    if (config.wformat !== 'int4') why.push(`${config.wformat} weights (ONNX Runtime has no CPU kernel for FLOAT4E2M1)`);
    if (config.grouping !== 'oc') why.push(`--grouping ${config.grouping} (${format} stores groups along K only: use --grouping oc)`);
    if (config.aformat === 'fp8') why.push(`--aformat fp8 (${format} has no FP8 activation path)`);
  }
  if (why.length > 0) {
    throw new UsageError(`--format ${format} cannot carry ${why.join('; ')}; use --format sim to simulate this configuration with standard ops`);
  }
}
