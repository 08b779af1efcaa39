// Reader for llama2.c "legacy v0" checkpoints (the .bin that run.c memory-maps): a 7 x int32
// header, then fp32 tensors back to back in a fixed order. Tensors are read one at a time, so a
// checkpoint never has to fit in memory twice.
import * as fs from 'node:fs';
import { W4A8Error } from '../util/errors';
import { openRegularFile } from '../util/regular_file';

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** The classifier reuses the token embedding (header vocab_size > 0). */
  sharedClassifier: boolean;
  headSize: number;
  kvDim: number;
}

/** One tensor of the file: where it lies and its logical [rows, cols] shape (layers stacked in front). */
export interface CheckpointTensor {
  name: string;
  offset: number;
  /** Shape per layer (or of the whole tensor when `layers` is 1). */
  shape: number[];
  layers: number;
}

export const HEADER_BYTES = 7 * 4;
/** "ak42" as a little-endian uint32: the first word of llama2.c's version 1 and 2 exports. */
const LLAMA2C_MAGIC = 0x616b3432;

/** The header fields in file order, with the checks run.c leaves to luck. */
export function parseLlama2cHeader(header: Uint8Array, source: string): Llama2cConfig {
  if (header.length < HEADER_BYTES) throw new W4A8Error(`${source} is too short for a llama2.c checkpoint header (${header.length} bytes, need ${HEADER_BYTES})`);
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  if (view.getUint32(0, true) === LLAMA2C_MAGIC) {
    throw new W4A8Error(
      `${source} is a llama2.c version ${view.getInt32(4, true)} export (magic "ak42"); only legacy version 0 checkpoints are supported: ` +
        `re-export with llama2.c's export.py --version 0`,
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true));
  const fields = { dim, hidden_dim: hiddenDim, n_layers: nLayers, n_heads: nHeads, n_kv_heads: nKvHeads, seq_len: seqLen };
  for (const [name, value] of Object.entries(fields)) {
    if (!(value > 0)) throw new W4A8Error(`${source} is not a llama2.c legacy checkpoint: header ${name} is ${value}; expected a positive integer`);
  }
  if (rawVocab === 0) throw new W4A8Error(`${source} is not a llama2.c legacy checkpoint: header vocab_size is 0`);
  if (dim % nHeads !== 0) throw new W4A8Error(`${source}: dim ${dim} is not a multiple of n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw new W4A8Error(`${source}: n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  const headSize = dim / nHeads;
  if (headSize % 2 !== 0) throw new W4A8Error(`${source}: head size ${headSize} is odd; rotary embeddings rotate pairs`);
  return {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(rawVocab),
    seqLen,
    sharedClassifier: rawVocab > 0,
    headSize,
    kvDim: (dim * nKvHeads) / nHeads,
  };
}

/** Every tensor of the file in order (the legacy freq_cis tables included), and the total size. */
export function checkpointLayout(c: Llama2cConfig): { tensors: CheckpointTensor[]; fileBytes: number } {
  const L = c.nLayers;
  const spec: [string, number[], number][] = [
    ['token_embedding_table', [c.vocabSize, c.dim], 1],
    ['rms_att_weight', [c.dim], L],
    ['wq', [c.dim, c.dim], L],
    ['wk', [c.kvDim, c.dim], L],
    ['wv', [c.kvDim, c.dim], L],
    ['wo', [c.dim, c.dim], L],
    ['rms_ffn_weight', [c.dim], L],
    ['w1', [c.hiddenDim, c.dim], L],
    ['w2', [c.dim, c.hiddenDim], L],
    ['w3', [c.hiddenDim, c.dim], L],
    ['rms_final_weight', [c.dim], 1],
    ['freq_cis_real', [c.seqLen, c.headSize / 2], 1],
    ['freq_cis_imag', [c.seqLen, c.headSize / 2], 1],
  ];
  if (!c.sharedClassifier) spec.push(['wcls', [c.vocabSize, c.dim], 1]);
  let offset = HEADER_BYTES;
  const tensors = spec.map(([name, shape, layers]) => {
    const t = { name, offset, shape, layers };
    offset += 4 * layers * shape.reduce((a, b) => a * b, 1);
    return t;
  });
  return { tensors, fileBytes: offset };
}

/** An open checkpoint: its config, and reads of one layer's slice of a named tensor. */
export class Llama2cCheckpoint {
  readonly config: Llama2cConfig;
  private readonly tensors = new Map<string, CheckpointTensor>();

  private constructor(
    private readonly fd: number,
    readonly file: string,
    config: Llama2cConfig,
    tensors: CheckpointTensor[],
    /** The checkpoint's size in bytes. */
    readonly fileBytes: number,
  ) {
    this.config = config;
    for (const t of tensors) this.tensors.set(t.name, t);
  }

  static open(file: string): Llama2cCheckpoint {
    const { fd, size } = openRegularFile(file, 'checkpoint', `cannot open checkpoint ${file}: ENOENT`);
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      const n = fs.readSync(fd, header, 0, HEADER_BYTES, 0);
      const config = parseLlama2cHeader(header.subarray(0, n), file);
      const { tensors, fileBytes } = checkpointLayout(config);
      if (size !== fileBytes) {
        const what = size < fileBytes ? 'truncated' : 'longer than its header describes';
        throw new W4A8Error(
          `${file} is ${what}: ${size} bytes, but a llama2.c legacy checkpoint with dim ${config.dim}, hidden_dim ${config.hiddenDim}, ` +
            `${config.nLayers} layers, vocab ${config.vocabSize} (${config.sharedClassifier ? 'shared' : 'separate'} classifier) and seq_len ${config.seqLen} ` +
            `has ${fileBytes}; is it a newer llama2.c export (version 1/2 with a magic header) or an incomplete download?`,
        );
      }
      return new Llama2cCheckpoint(fd, file, config, tensors, fileBytes);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Logical shape of one layer's slice of `name`. */
  shape(name: string): number[] {
    return this.entry(name).shape;
  }

  /** fp32 values of `name` for `layer` (0 for unlayered tensors). */
  read(name: string, layer = 0): Float32Array {
    const t = this.entry(name);
    if (!Number.isInteger(layer) || layer < 0 || layer >= t.layers) throw new RangeError(`layer ${layer} is outside 0..${t.layers - 1} for ${name}`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(count);
    const bytes = new Uint8Array(out.buffer);
    let pos = t.offset + layer * count * 4;
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(this.fd, bytes, done, bytes.length - done, pos);
      if (n <= 0) throw new W4A8Error(`${this.file} ended while reading ${name}`);
      done += n;
      pos += n;
    }
    // The format is little-endian, like every machine Node runs on in practice.
    return out;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private entry(name: string): CheckpointTensor {
    const t = this.tensors.get(name);
    if (!t) throw new RangeError(`no tensor ${name} in a llama2.c checkpoint`);
    return t;
  }
}
