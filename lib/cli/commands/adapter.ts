// `w4a8 adapter attach <model.onnx> <adapter> -o <out.onnx>`: adds a PEFT LoKr or Compacter
// adapter to a (quantized) model as standard ONNX ops that stock ONNX Runtime runs.
import type { Argv, CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { attachAdapter } from '../../pipeline/adapter';

interface AttachArgs extends CommonArgs {
  model: string;
  adapter: string;
  output: string;
}

const attachCommand: CommandModule<CommonArgs, AttachArgs> = {
  command: 'attach <model> <adapter>',
  describe: 'Add a LoKr or Compacter adapter to a model (quantized or not) as standard ONNX ops beside its layers',
  builder: (y: Argv<CommonArgs>) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'the .onnx model, e.g. the output of quantize' })
      .positional('adapter', { type: 'string', demandOption: true, describe: 'a folder with adapter_model.safetensors and adapter_config.json, or a .safetensors file' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the adapted model (.onnx)' })
      .example('$0 adapter attach out/model.onnx my-lokr/ -o out/model-lokr.onnx', '') as Argv<AttachArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const r = await attachAdapter({ input: args.model, adapter: args.adapter, output: args.output });
      if (ctx.json) {
        ctx.out(JSON.stringify(r));
        return;
      }
      const params = r.layers.reduce((s, l) => s + l.params, 0);
      ctx.out(`${r.kind} adapter attached to ${r.layers.length} layers (${params} parameters): ${r.output}`);
    }),
};

export const adapterCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'adapter <command>',
  describe: 'Adapters on a (quantized) model: attach',
  builder: (y: Argv<CommonArgs>) => y.command(attachCommand).demandCommand(1, 'Give a subcommand: attach') as Argv<CommonArgs>,
  handler: () => undefined,
};
