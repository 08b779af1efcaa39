// `w4a8 quantize <in.onnx> -o <out.onnx>`: calibrate, quantize every MatMul (but the logits),
// export as MatMulNBits, QDQ or standard-op simulation; progress per layer on stderr.
import type { CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { applyThreads, threadsOption } from '../threads_option';
import { integerOption, numberOption } from '../numeric_options';
import { quantizeModel } from '../../pipeline/quantize';
import { CALIB_MODES, type CalibMode } from '../../pipeline/sequential';
import { ACT_FORMATS, COMPENSATE_FACTORS, COMPENSATIONS, EXPORT_FORMATS, GROUP_SIZES, GROUPINGS, METHODS, WEIGHT_FORMATS, configLabel } from '../../quant/config';

interface QuantizeArgs extends CommonArgs {
  input: string;
  output: string;
  method: (typeof METHODS)[number];
  wformat: (typeof WEIGHT_FORMATS)[number];
  group: number;
  grouping: (typeof GROUPINGS)[number];
  sym?: boolean;
  asym?: boolean;
  aformat: (typeof ACT_FORMATS)[number];
  format: (typeof EXPORT_FORMATS)[number];
  'fuse-decoder': boolean;
  'merge-projections': boolean;
  'widen-fp16': boolean;
  calib?: string;
  tokenizer?: string;
  'calib-tokens': number;
  'calib-seqlen': number;
  exclude?: string[];
  'keep-logits': boolean;
  'act-order': boolean;
  'clip-search': boolean;
  'pow2-scales': boolean;
  compensate: (typeof COMPENSATIONS)[number];
  'compensate-budget'?: number;
  'compensate-rank'?: number;
  'compensate-factors': (typeof COMPENSATE_FACTORS)[number];
  'calib-budget-mb': number;
  'calib-mode'?: CalibMode;
  resume?: boolean;
  threads?: number;
}

/** Calibration bounds shared with sweep: positive whole token counts, a window of at least 2. */
export function calibrationOptions(args: { 'calib-tokens': unknown; 'calib-seqlen': unknown }): { calibTokens: number; calibSeqlen: number } {
  return {
    calibTokens: integerOption('calib-tokens', args['calib-tokens'], 1),
    calibSeqlen: integerOption('calib-seqlen', args['calib-seqlen'], 2),
  };
}

export const quantizeCommand: CommandModule<CommonArgs, QuantizeArgs> = {
  command: 'quantize <input>',
  describe: 'Quantize an ONNX LLM to 4-bit weights (RTN, AWQ or GPTQ) with 8-bit or float activations',
  builder: (y) =>
    y
      .positional('input', { type: 'string', demandOption: true, describe: 'The float ONNX model' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the quantized model (+ <out>.report.json)' })
      .option('method', { type: 'string', choices: METHODS, default: 'rtn' as const, describe: 'Weight quantization method' })
      .option('wformat', { type: 'string', choices: WEIGHT_FORMATS, default: 'int4' as const, describe: 'Weight element format' })
      .option('group', { type: 'number', choices: GROUP_SIZES, default: 32, describe: 'Group size (0 = per output channel)' })
      .option('grouping', { type: 'string', choices: GROUPINGS, default: 'oc' as const, describe: 'Groups along K (oc), along N (ic), or per layer the lower error (auto)' })
      .option('sym', { type: 'boolean', describe: 'Symmetric int4 (zero point 8)' })
      .option('asym', { type: 'boolean', describe: 'Asymmetric int4 (default for int4)' })
      .conflicts('sym', 'asym')
      .option('aformat', { type: 'string', choices: ACT_FORMATS, default: 'int8' as const, describe: 'Activations: per-token dynamic int8, fp8 E4M3, or none' })
      .option('format', { type: 'string', choices: EXPORT_FORMATS, default: 'matmulnbits' as const, describe: 'Export: com.microsoft MatMulNBits, opset-21 QDQ, standard-op simulation, or w4a8 (com.w4a8 W4A8MatMul nodes: the w4a8 CPU kernels inside ONNX Runtime)' })
      .option('fuse-decoder', { type: 'boolean', default: true, describe: '--format w4a8: also run attention (rotary, grouped-query, KV cache) and RMSNorm as single com.w4a8 nodes (models written by import llama2c, standard or --layout genai, and ONNX Runtime GenAI graphs with GroupQueryAttention; --no-fuse-decoder keeps the graph\'s own ops)' })
      .option('widen-fp16', { type: 'boolean', default: true, describe: '--format w4a8 with the fused decoder: run an fp16 graph in fp32 (its cache, logits and activations become fp32; embedding tables stay fp16), which the fused kernels need; --no-widen-fp16 keeps fp16 and the standard ops' })
      .option('merge-projections', { type: 'boolean', default: true, describe: '--format w4a8 with the fused decoder: one W4A8MatMul for q|k|v and one for gate|up (SwiGLU inside); --no-merge-projections keeps one node per layer, which `adapter attach` needs for those layers' })
      .option('calib', { type: 'string', describe: 'Calibration text (UTF-8; documents split on blank lines)' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer file (default: the one beside the model)' })
      .option('calib-tokens', { type: 'number', default: 8192, describe: 'Calibration tokens at most' })
      .option('calib-seqlen', { type: 'number', default: 512, describe: 'Calibration window length in tokens' })
      .option('exclude', { type: 'string', array: true, describe: 'Glob(s) of layer or weight names to keep in float (and the logits layer, unless --no-keep-logits)' })
      .option('keep-logits', {
        type: 'boolean', default: true,
        describe: 'Keep the logits projection (lm_head) in float; --no-keep-logits quantizes it too, as ONNX Runtime GenAI\'s int4 models do (a 32000-word lm_head is 262 MB of fp32 a decode step reads)',
      })
      .option('act-order', { type: 'boolean', default: false, describe: 'GPTQ: visit inputs by decreasing Hessian diagonal' })
      .option('clip-search', { type: 'boolean', default: false, describe: 'GPTQ: choose each group\'s clip ratio by the least (Hessian-diagonal weighted) squared quantization error' })
      .option('pow2-scales', { type: 'boolean', default: false, describe: 'Round scales up to powers of two' })
      .option('compensate', { type: 'string', choices: COMPENSATIONS, default: 'none' as const, describe: 'Error correction beside each quantized weight: rank-r SVD of W - Q(W) (lorc), its activation-aware optimum (lorc-aware), or an activation-aware Kronecker sum (kron-aware); fp16 factors, exported as standard MatMul/Add nodes' })
      .option('compensate-budget', { type: 'number', describe: 'Extra parameters per layer as a fraction of its K*N (0.05 = 5 %)' })
      .option('compensate-factors', { type: 'string', choices: COMPENSATE_FACTORS, default: 'fp16' as const, describe: 'How low-rank factors are stored: fp16, or int8 with one scale per row (--format w4a8: half the bytes a decode step reads for them)' })
      .option('compensate-rank', { type: 'number', describe: 'Fixed rank (lorc, lorc-aware) or number of Kronecker terms (kron-aware), instead of a budget' })
      .option('calib-budget-mb', { type: 'number', default: 1024, describe: 'Memory for calibration statistics per pass; more layers -> more passes over the text' })
      .option('calib-mode', {
        type: 'string',
        choices: CALIB_MODES,
        describe:
          'sequential: block by block, each block calibrated on the outputs of the quantized blocks before it (one block in memory at a time); ' +
          'all: every layer from one run of the float model. Default: sequential for --method awq and for models with over 1 GiB of external data, else all ' +
          '(sequential needs node names that give the blocks, layers.N / h.N; the default falls back to all without them)',
      })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe:
          'Sequential calibration: keep each finished block in a hidden folder beside the output (.<name>.w4a8-resume) and, when an ' +
          'interrupted run with the same input, options and calibration text left one, continue after its last finished block; the folder goes once the output is written',
      })
      .option('threads', threadsOption) as never,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const { calibTokens, calibSeqlen } = calibrationOptions(args);
      const budgetMb = numberOption('calib-budget-mb', args['calib-budget-mb'], { min: 0, exclusiveMin: true });
      applyThreads(args.threads);
      const summary = await quantizeModel({
        input: args.input,
        output: args.output,
        method: args.method,
        wformat: args.wformat,
        groupSize: args.group,
        grouping: args.grouping,
        symmetric: args.sym === true ? true : args.asym === true ? false : undefined,
        aformat: args.aformat,
        format: args.format,
        fuseDecoder: args['fuse-decoder'],
        mergeProjections: args['merge-projections'],
        widenFloat16: args['widen-fp16'],
        calib: args.calib,
        tokenizer: args.tokenizer,
        calibTokens,
        calibSeqlen,
        exclude: args.exclude ?? [],
        keepLogits: args['keep-logits'],
        actOrder: args['act-order'],
        clipSearch: args['clip-search'],
        pow2Scales: args['pow2-scales'],
        compensate: args.compensate === 'none' ? undefined : args.compensate,
        compensateBudget: args['compensate-budget'],
        compensateRank: args['compensate-rank'],
        compensateFactors: args['compensate-factors'] === 'fp16' ? undefined : args['compensate-factors'],
        captureBudgetBytes: budgetMb * 2 ** 20,
        calibMode: args['calib-mode'],
        resume: args.resume === true,
        progress: ctx.progress,
        cancel: ctx.cancel,
      });
      if (ctx.json) {
        ctx.out(JSON.stringify(summary));
        return;
      }
      for (const w of summary.warnings) ctx.progress.log(w, 'warn');
      ctx.out(`${summary.output}: ${configLabel(summary.config)}, --format ${summary.format}, ${summary.layers.length} layers quantized, ${summary.excluded.length} kept in float`);
      for (const note of summary.export.notes) ctx.out(`note: ${note}`);
      if (summary.calibMode) ctx.out(`calibration: ${summary.calibMode === 'sequential' ? 'sequential (block by block, on the quantized prefix)' : 'all layers at once'}, ${summary.calibTokens} tokens`);
      if (summary.resumedBlocks) ctx.out(`resumed: ${summary.resumedBlocks} block(s) taken from the interrupted run`);
      ctx.out(`per-layer report: ${summary.report}`);
    }),
};
