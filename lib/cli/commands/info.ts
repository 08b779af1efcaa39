// `w4a8 info`: what this build can do here (CPU instruction sets and the one kernels use, CUDA), and the
// ONNX Runtime library the w4a8 engine opens, with its version or why it cannot be opened.
import type { CommandModule } from 'yargs';
import { runCommand, CommonArgs } from '../run_command';
import { cpuModel } from '../../bench/cpu';
import { capabilities, type Capabilities } from '../../native/capabilities';
import { cpuDefaultIsa, cpuIsaOverrideIgnored } from '../../native/kernels';
import { openOrtLibrary } from '../../native/ort_runtime';
import { onnxruntimeLibraryPath } from '../../ort/engine_session';

interface OnnxRuntimeInfo {
  /** The libonnxruntime.so.1 the w4a8 engine opens (onnxruntime-node's, or W4A8_ORT_LIBRARY). */
  library: string | null;
  version: string | null;
  /** Why it cannot be opened, when it cannot. */
  error?: string;
}

interface Info extends Capabilities {
  cpu: string;
  /** The ISA kernels use by default: the best of cpuIsas, or W4A8_ISA when this CPU has it. */
  defaultIsa: string;
  onnxRuntime: OnnxRuntimeInfo;
}

function onnxRuntimeInfo(): OnnxRuntimeInfo {
  let library: string | null = null;
  try {
    library = onnxruntimeLibraryPath();
    return { library, version: openOrtLibrary(library) };
  } catch (err) {
    return { library, version: null, error: err instanceof Error ? err.message : String(err) };
  }
}

export const infoCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'info',
  describe: 'Show the native build: CPU instruction sets found and the default one, CUDA compiled in and devices, the ONNX Runtime library the w4a8 engine opens',
  handler: (args) =>
    runCommand(args, async (ctx) => {
      const info: Info = { cpu: cpuModel(), ...capabilities(), defaultIsa: cpuDefaultIsa(), onnxRuntime: onnxRuntimeInfo() };
      if (cpuIsaOverrideIgnored()) ctx.progress.log(`W4A8_ISA=${process.env.W4A8_ISA} is not one of this CPU's ISAs (${info.cpuIsas.join(', ')}); kernels use ${info.defaultIsa}`, 'warn');
      if (ctx.json) {
        ctx.out(JSON.stringify(info));
        return;
      }
      for (const [key, value] of Object.entries(info)) {
        if (key === 'onnxRuntime') continue;
        ctx.out(`${key}: ${Array.isArray(value) ? value.join(', ') : String(value)}`);
      }
      const o = info.onnxRuntime;
      ctx.out(o.version ? `onnxRuntime: ${o.version} (${o.library})` : `onnxRuntime: not available: ${o.error}`);
    }),
};
