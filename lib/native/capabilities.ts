// What the native addon can do on this machine.
import { native } from './binding';

export interface Capabilities {
  /** CPU instruction-set paths usable here, best last (filled by the CPU kernels). */
  cpuIsas: string[];
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaDevice?: string;
}

export function capabilities(): Capabilities {
  const b = native();
  return {
    cpuIsas: b.cpuIsas(),
    cudaCompiled: b.buildInfo.cudaCompiled,
    cudaDevices: b.buildInfo.cudaDevices,
    ...(b.buildInfo.cudaDevice ? { cudaDevice: b.buildInfo.cudaDevice } : {}),
  };
}
