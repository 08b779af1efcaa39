// `importLlama2c`: a llama2.c checkpoint + tokenizer -> <dir>/model.onnx + the tokenizer beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import { AUTO_EXTERNAL_BYTES, modelBytes, saveModel } from '../onnx/model';
import { GraphBuilder } from './graph_builder';
import { ImportSideFile } from './side_sink';
import { Llama2cTokenizer } from '../tokenize/llama2c';
import { OutputSet, checkOutputPath } from '../util/output_set';
import { readRegularFile } from '../util/regular_file';
import type { Progress } from '../util/progress';
import { Llama2cCheckpoint, type Llama2cConfig } from './llama2c_checkpoint';
import { buildLlama2cDecoder, checkDecoderLayout, type DecoderLayout } from './decoder_layout';

export interface ImportResult {
  modelPath: string;
  tokenizerPath: string;
  config: Llama2cConfig;
}

/** The name the tokenizer gets beside the model: its own if findTokenizerBeside would find it. */
function tokenizerTargetName(tokenizer: string): string {
  const base = path.basename(tokenizer);
  return /^tok.*\.bin$/.test(base) ? base : 'tokenizer.bin';
}

export interface ImportLlama2cOptions {
  /** Checkpoints larger than this stream their weights into a side file as they are read (default: saveModel's external-data threshold). */
  streamAboveBytes?: number;
  /** The graph: standard ONNX ops (default) or ONNX Runtime GenAI's contrib-op layout. */
  layout?: DecoderLayout;
}

export async function importLlama2c(checkpoint: string, tokenizer: string, outDir: string, progress?: Progress, opts: ImportLlama2cOptions = {}): Promise<ImportResult> {
  for (const [name, value] of Object.entries({ checkpoint, tokenizer, outDir })) {
    if (typeof value !== 'string' || value.length === 0) throw new TypeError(`Expected a non-empty path for ${name} but received ${String(value)}`);
  }
  const layout = checkDecoderLayout(opts.layout ?? 'standard');
  let tokBytes: Buffer;
  try {
    tokBytes = readRegularFile(tokenizer, 'tokenizer', 2 ** 31, `cannot read tokenizer ${tokenizer}: ENOENT`);
  } catch (err) {
    if (err instanceof W4A8Error) throw err;
    throw new W4A8Error(`cannot read tokenizer ${tokenizer}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const tok = Llama2cTokenizer.fromBytes(tokBytes, tokenizer);

  const ckpt = Llama2cCheckpoint.open(checkpoint);
  try {
    const config = ckpt.config;
    if (tok.vocabSize !== config.vocabSize) {
      throw new W4A8Error(
        `tokenizer ${tokenizer} has ${tok.vocabSize} tokens but checkpoint ${checkpoint} has vocab_size ${config.vocabSize}; ` +
          `pass the tok*.bin the model was trained with (e.g. tok${config.vocabSize}.bin)`,
      );
    }
    if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new W4A8Error(`output ${outDir} exists and is not a folder`);
    const modelPath = path.join(outDir, 'model.onnx');
    const tokenizerPath = path.join(outDir, tokenizerTargetName(tokenizer));
    for (const [f, label] of [[modelPath, 'output model'], [path.join(outDir, 'model.onnx_data'), 'external data file of the output'], [tokenizerPath, 'tokenizer copy']]) {
      checkOutputPath(f, label);
    }
    // Folder, lock and staging before the build; model, side file and tokenizer appear together.
    const outputs = new OutputSet(modelPath, { inputs: [checkpoint, tokenizer] });
    try {
      if (ckpt.fileBytes > (opts.streamAboveBytes ?? AUTO_EXTERNAL_BYTES)) {
        // As large as saveModel would put in a side file anyway: stream each weight there as it is
        // read, so the import holds about one tensor, not the model.
        const dataPath = outputs.add(path.join(outDir, 'model.onnx_data'), 'external data file of the output');
        const side = new ImportSideFile(outputs.staged(dataPath), 'model.onnx_data');
        try {
          const g = new GraphBuilder((name, dims, data) => side.write(name, dims, data), undefined, (name, src, rows, cols) => side.writeTransposed(name, src, rows, cols));
          const model = await buildLlama2cDecoder(layout, ckpt, progress, g);
          side.finish();
          fs.writeFileSync(outputs.staged(outputs.add(modelPath, 'output model')), modelBytes(model));
        } finally {
          side.close();
        }
      } else {
        const model = await buildLlama2cDecoder(layout, ckpt, progress);
        saveModel(model, modelPath, { into: outputs });
      }
      if (path.resolve(tokenizerPath) !== path.resolve(tokenizer)) fs.writeFileSync(outputs.staged(outputs.add(tokenizerPath, 'tokenizer')), tokBytes);
      outputs.commit();
    } finally {
      outputs.abort(); // no-op once committed
    }
    return { modelPath, tokenizerPath, config };
  } finally {
    ckpt.close();
  }
}
