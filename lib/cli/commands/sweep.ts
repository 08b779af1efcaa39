// `w4a8 sweep <model.onnx> --calib <text> --eval <text> --out <dir>`: a grid of quantization
// configurations on one model; writes sweep.md, sweep.json, sweep.svg (and optionally QUALITY.md).
import type { CommandModule } from 'yargs';
import { UsageError } from '../../util/errors';
import { runCommand, CommonArgs } from '../run_command';
import { sweep, writeSweep } from '../../pipeline/sweep';
import { issue3FollowUps, issue3Grid, loadSweepConfigs } from '../../pipeline/sweep_configs';
import { bestMethod, qualityDoc } from '../../pipeline/report_quality';
import { sweepTable } from '../../pipeline/report_markdown';
import { writeFileAtomic } from '../../util/atomic_write';

interface SweepArgs extends CommonArgs {
  model: string;
  calib: string;
  eval: string;
  configs?: string;
  preset?: 'issue3';
  ctx: number;
  'max-tokens': number;
  'calib-tokens': number;
  'calib-seqlen': number;
  tokenizer?: string;
  exclude?: string[];
  out: string;
  quality?: string;
}

export const sweepCommand: CommandModule<CommonArgs, SweepArgs> = {
  command: 'sweep <model>',
  describe: 'Evaluate a grid of quantization configurations on one model (markdown table, JSON, SVG chart)',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'The float ONNX model' })
      .option('calib', { type: 'string', demandOption: true, describe: 'Calibration text' })
      .option('eval', { type: 'string', demandOption: true, describe: 'Evaluation text (perplexity protocol)' })
      .option('configs', { type: 'string', describe: 'JSON array of {method, wformat, group, grouping, sym, aformat, format, actOrder}' })
      .option('preset', { type: 'string', choices: ['issue3'] as const, describe: 'A built-in grid (issue3: 54 sim configs + grouping and stock-ORT exports of the best method)' })
      .conflicts('configs', 'preset')
      .option('ctx', { type: 'number', default: 512, describe: 'Eval window length' })
      .option('max-tokens', { type: 'number', default: 20000, describe: 'Eval predictions at most' })
      .option('calib-tokens', { type: 'number', default: 8192, describe: 'Calibration tokens at most' })
      .option('calib-seqlen', { type: 'number', default: 512, describe: 'Calibration window length' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer file (default: beside the model)' })
      .option('exclude', { type: 'string', array: true, describe: 'Glob(s) of layers kept in float' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output folder for sweep.md, sweep.json, sweep.svg' })
      .option('quality', { type: 'string', describe: 'Also write the QUALITY.md document here (issue3 preset)' }) as never,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      if (!args.configs && !args.preset) throw new UsageError('give --configs <json> or --preset issue3');
      const configs = args.configs ? loadSweepConfigs(args.configs) : issue3Grid();
      const report = await sweep({
        model: args.model,
        calib: args.calib,
        evalText: args.eval,
        configs,
        followUps: args.preset === 'issue3' ? (rows) => issue3FollowUps(bestMethod(rows)) : undefined,
        tokenizer: args.tokenizer,
        ctx: args.ctx,
        maxTokens: args['max-tokens'],
        calibTokens: args['calib-tokens'],
        calibSeqlen: args['calib-seqlen'],
        exclude: args.exclude ?? [],
        progress: ctx.progress,
        cancel: ctx.cancel,
      });
      writeSweep(report, args.out);
      if (args.quality) writeFileAtomic(args.quality, qualityDoc(report));
      if (ctx.json) ctx.out(JSON.stringify(report));
      else ctx.out(sweepTable([report.baseline, ...report.rows]));
    }),
};
