// Feeds for the llama2.c importer's decoder (Optimum / GenAI names): input_ids, attention_mask,
// position_ids and the past key/values of every layer, after `past` (none: an empty cache).
import * as ort from 'onnxruntime-node';

export interface DecoderShape {
  layers: number;
  kvHeads: number;
  headSize: number;
}

export interface Past {
  length: number;
  /** present.N.key / present.N.value outputs of the previous run, by layer. */
  tensors: Record<string, ort.Tensor>;
}

export function decoderFeeds(batch: number[][], shape: DecoderShape, past?: Past): Record<string, ort.Tensor> {
  const b = batch.length;
  const seq = batch[0].length;
  const start = past?.length ?? 0;
  const int64 = (values: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: int64(batch.flat(), [b, seq]),
    attention_mask: int64(new Array<number>(b * (start + seq)).fill(1), [b, start + seq]),
    position_ids: int64(batch.flatMap(() => Array.from({ length: seq }, (_, i) => start + i)), [b, seq]),
  };
  for (let l = 0; l < shape.layers; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kind}`] =
        past?.tensors[`present.${l}.${kind}`] ?? new ort.Tensor('float32', new Float32Array(0), [b, shape.kvHeads, 0, shape.headSize]);
    }
  }
  return feeds;
}

/** The present outputs of a run, as the next run's past. */
export function pastFrom(out: Record<string, ort.Tensor>, length: number): Past {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(out)) if (name.startsWith('present.')) tensors[name] = t;
  return { length, tensors };
}
