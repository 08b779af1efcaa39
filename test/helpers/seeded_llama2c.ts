// Seeded weights for the llama2.c graph builder (lib/import/llama2c_graph.ts), for tests that build
// small decoders of odd shapes: uniform in +-1/sqrt(fan_in), RMSNorm gains around 1 (not all 1: the
// weight must matter).
import { checkpointLayout, type Llama2cConfig } from '../../lib/import/llama2c_checkpoint';
import type { Llama2cWeights } from '../../lib/import/llama2c_graph';
import { xorshift32 } from './seeded';

export class SeededWeights implements Llama2cWeights {
  private readonly shapes: Map<string, number[]>;
  constructor(
    readonly config: Llama2cConfig,
    private readonly seed: number,
  ) {
    this.shapes = new Map(checkpointLayout(config).tensors.map((t) => [t.name, t.shape]));
  }
  shape(name: string): number[] {
    return this.shapes.get(name)!;
  }
  read(name: string, layer = 0): Float32Array {
    const shape = this.shape(name);
    const next = xorshift32(this.seed * 7919 + name.length * 131 + layer * 17 + name.charCodeAt(1));
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const bound = shape.length === 1 ? 0.5 : name === 'token_embedding_table' ? 1 : 1 / Math.sqrt(shape[1]);
    for (let i = 0; i < out.length; i++) out[i] = (shape.length === 1 ? 1 : 0) + bound * (2 * (next() / 2 ** 32) - 1);
    return out;
  }
}
