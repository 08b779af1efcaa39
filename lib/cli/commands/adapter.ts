// `w4a8 adapter attach <model.onnx> <adapter> -o <out.onnx>`: adds a PEFT LoKr or Compacter
// adapter to a (quantized) model: fused into com.w4a8.W4A8MatMul layers, or as standard ONNX ops
// that stock ONNX Runtime runs (--mode branch, and every layer that is not W4A8MatMul).
import type { Argv, CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { attachAdapter } from '../../pipeline/adapter';

interface AttachArgs extends CommonArgs {
  model: string;
  adapter: string;
  output: string;
  mode: 'fused' | 'branch';
}

const attachCommand: CommandModule<CommonArgs, AttachArgs> = {
  command: 'attach <model> <adapter>',
  describe: 'Add a LoKr or Compacter adapter to a model (quantized or not): fused into W4A8MatMul layers, standard ONNX ops beside the others',
  builder: (y: Argv<CommonArgs>) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'the .onnx model, e.g. the output of quantize' })
      .positional('adapter', { type: 'string', demandOption: true, describe: 'a folder with adapter_model.safetensors and adapter_config.json, or a .safetensors file' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the adapted model (.onnx)' })
      .option('mode', {
        alias: 'adapter-mode', choices: ['fused', 'branch'] as const, default: 'fused' as const,
        describe: 'fused: into the Kronecker inputs of com.w4a8.W4A8MatMul layers (other layers get the branch); branch: standard ONNX ops beside every layer',
      })
      .example('$0 adapter attach out/model.onnx my-lokr/ -o out/model-lokr.onnx', '')
      .example('$0 adapter attach out/w4a8/model.onnx my-lokr/ --mode branch -o out/w4a8-lokr-branch.onnx', 'keep the standard-op branch on a w4a8 model') as Argv<AttachArgs>,
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const r = await attachAdapter({ input: args.model, adapter: args.adapter, output: args.output, mode: args.mode });
      if (ctx.json) {
        ctx.out(JSON.stringify(r));
        return;
      }
      const params = r.layers.reduce((s, l) => s + l.params, 0);
      const fused = r.layers.filter((l) => l.form === 'fused').length;
      ctx.out(`${r.kind} adapter attached to ${r.layers.length} layers (${params} parameters; ${fused} fused into W4A8MatMul, ${r.layers.length - fused} as standard ops): ${r.output}`);
    }),
};

export const adapterCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'adapter <command>',
  describe: 'Adapters on a (quantized) model: attach',
  builder: (y: Argv<CommonArgs>) => y.command(attachCommand).demandCommand(1, 'Give a subcommand: attach') as Argv<CommonArgs>,
  handler: () => undefined,
};
