// `w4a8 sweep <model.onnx> --calib <text> --eval <text> --configs <json> --out <dir>`: a grid of
// quantization configurations on one model; writes sweep.md, sweep.json, sweep.svg.
import type { CommandModule } from 'yargs';
import { integerOption } from '../numeric_options';
import { calibrationOptions } from './quantize';
import { runCommand, CommonArgs } from '../run_command';
import { applyThreads, threadsOption } from '../threads_option';
import { sweep, writeSweep } from '../../pipeline/sweep';
import { loadSweepConfigs } from '../../pipeline/sweep_configs';
import { sweepTable } from '../../pipeline/report_markdown';

interface SweepArgs extends CommonArgs {
  model: string;
  calib: string;
  eval: string;
  configs: string;
  ctx: number;
  'max-tokens': number;
  'calib-tokens': number;
  'calib-seqlen': number;
  tokenizer?: string;
  exclude?: string[];
  out: string;
  threads?: number;
}

export const sweepCommand: CommandModule<CommonArgs, SweepArgs> = {
  command: 'sweep <model>',
  describe: 'Evaluate a grid of quantization configurations on one model (markdown table, JSON, SVG chart)',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'The float ONNX model' })
      .option('calib', { type: 'string', demandOption: true, describe: 'Calibration text' })
      .option('eval', { type: 'string', demandOption: true, describe: 'Evaluation text (perplexity protocol)' })
      .option('configs', { type: 'string', demandOption: true, describe: 'JSON array of {method, wformat, group, grouping, sym, aformat, format, actOrder}' })
      .option('ctx', { type: 'number', default: 512, describe: 'Eval window length' })
      .option('max-tokens', { type: 'number', default: 20000, describe: 'Eval predictions at most' })
      .option('calib-tokens', { type: 'number', default: 8192, describe: 'Calibration tokens at most' })
      .option('calib-seqlen', { type: 'number', default: 512, describe: 'Calibration window length' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer file (default: beside the model)' })
      .option('exclude', { type: 'string', array: true, describe: 'Glob(s) of layers kept in float' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output folder for sweep.md, sweep.json, sweep.svg' })
      .option('threads', threadsOption) as never,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const { calibTokens, calibSeqlen } = calibrationOptions(args);
      const window = integerOption('ctx', args.ctx, 2);
      const maxTokens = integerOption('max-tokens', args['max-tokens'], 1);
      applyThreads(args.threads);
      const configs = loadSweepConfigs(args.configs);
      const report = await sweep({
        model: args.model,
        calib: args.calib,
        evalText: args.eval,
        configs,
        tokenizer: args.tokenizer,
        ctx: window,
        maxTokens,
        calibTokens,
        calibSeqlen,
        exclude: args.exclude ?? [],
        progress: ctx.progress,
        cancel: ctx.cancel,
      });
      writeSweep(report, args.out);
      if (ctx.json) ctx.out(JSON.stringify(report));
      else ctx.out(sweepTable([report.baseline, ...report.rows]));
    }),
};
