// `--engine ort|w4a8` for the commands that run a model (eval, generate): which
// session runs it. Without it the model decides: com.w4a8 nodes -> w4a8, anything else -> ort.
import { ENGINES } from '../ort/engine_session';

export type { Engine } from '../ort/engine_session';

export const engineOption = {
  type: 'string',
  choices: ENGINES,
  describe: 'Session engine: ort (onnxruntime-node) or w4a8 (ONNX Runtime with the com.w4a8 CPU-kernel ops); default: w4a8 for models with com.w4a8 nodes, else ort',
} as const;
