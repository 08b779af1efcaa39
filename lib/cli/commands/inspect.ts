// `w4a8 inspect <model.onnx>`: what a model holds before quantizing it: opsets, op counts,
// external data, and each weight with whether it can be packed to 4 bits.
import type { Argv, CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { loadModel } from '../../onnx/model';
import { summarizeModel, weightBytes, type ModelSummary } from '../../onnx/inspect';

interface InspectArgs extends CommonArgs {
  model: string;
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

export function formatSummary(file: string, summary: ModelSummary, bytesOf: (names: string[]) => number): string[] {
  const out: string[] = [];
  out.push(`model: ${file}`);
  out.push(`opsets: ${Object.entries(summary.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`);
  const ops = Object.entries(summary.ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  out.push(`ops (${ops.reduce((s, [, c]) => s + c, 0)} nodes): ${ops.map(([op, c]) => `${op} x${c}`).join(', ')}`);
  out.push(`external data: ${summary.externalData ? 'yes' : 'no'}`);
  const quantizable = summary.weights.filter((w) => w.quantizable).map((w) => w.name);
  out.push(
    `weights: ${summary.weights.length} (${formatBytes(bytesOf(summary.weights.map((w) => w.name)))}), ` +
      `quantizable: ${quantizable.length} (${formatBytes(bytesOf(quantizable))})`,
  );
  if (summary.weights.length > 0) {
    out.push('');
    out.push(
      ...table(
        ['name', 'node', 'shape', 'dtype', 'external', 'quantizable'],
        summary.weights.map((w) => [w.name, w.node, w.shape.join('x'), w.dtype, w.external ? 'yes' : 'no', w.quantizable ? 'yes' : 'no']),
      ),
    );
  }
  if (summary.corrections.length > 0) {
    const total = summary.corrections.reduce((s, c) => s + c.params, 0);
    out.push('');
    out.push(`error corrections (quantize --compensate): ${summary.corrections.length} layers, ${total} extra parameters`);
    out.push(
      ...table(
        ['weight', 'kind', 'rank/terms', 'factor shapes', 'extra parameters'],
        summary.corrections.map((c) => [c.weight, c.kind, String(c.rank), c.shapes.map((d) => d.join('x')).join(' + '), String(c.params)]),
      ),
    );
  }
  if (summary.adapters.length > 0) {
    const total = summary.adapters.reduce((s, a) => s + a.params, 0);
    out.push('');
    out.push(`adapters (adapter attach): ${summary.adapters.length} layers, ${total} parameters`);
    out.push(
      ...table(
        ['layer', 'kronecker terms', 'factor shapes', 'parameters'],
        summary.adapters.map((a) => [a.layer, String(a.terms), a.shapes.map((d) => d.join('x')).join(' + '), String(a.params)]),
      ),
    );
  }
  return out;
}

export const inspectCommand: CommandModule<CommonArgs, InspectArgs> = {
  command: 'inspect <model>',
  describe: 'Show a model: opsets, op counts, external data, and its weights (which are quantizable)',
  builder: (y: Argv<CommonArgs>) => y.positional('model', { type: 'string', demandOption: true, describe: 'the .onnx file' }) as Argv<InspectArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const model = loadModel(args.model);
      const summary = summarizeModel(model);
      if (ctx.json) {
        // corrections only when the model has some (quantize --compensate), so other models keep the same keys.
        const corrections = summary.corrections.length > 0 ? { corrections: summary.corrections } : {};
        const adapters = summary.adapters.length > 0 ? { adapters: summary.adapters } : {};
        ctx.out(JSON.stringify({ opsets: summary.opsets, ops: summary.ops, externalData: summary.externalData, weights: summary.weights, ...corrections, ...adapters }));
        return;
      }
      ctx.out(formatSummary(args.model, summary, (names) => weightBytes(model, names)).join('\n'));
    }),
};
