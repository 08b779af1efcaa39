// The state `quantize --resume` continues from: what a sequential run has finished, block by
// block, in a hidden folder beside the output (.<output name>.w4a8-resume/). After each block: the
// block's quantized layers (codes, scales, zero points, correction factors; the dequantized weight
// for the sim export only), its reports and AWQ scalings, and the activations the next block reads.
// A fingerprint of everything that decides the result (the input files, the configuration, the
// calibration windows) must match for a resume; the folder goes once the output is written.
//
// Files: state.json { version, fingerprint, blocksDone }, written last (renamed over), so a crash
// mid-block leaves the previous block's state; block-NNNN.json/.bin per block; carried-NNNN.json/.bin,
// the outputs of block NNNN (only the latest is kept, the one before goes after state.json names
// the new one). In .json, each typed array of the tree is {"$a": type, "o": byte
// offset, "n": length} into the matching .bin.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic_write';
import { W4A8Error } from '../util/errors';

const VERSION = 1;

type Typed = Float32Array | Float64Array | Uint8Array | Int8Array | Uint16Array | Int32Array | BigInt64Array;
const ARRAY_TYPES: Record<string, new (buffer: ArrayBuffer, byteOffset: number, length: number) => Typed> = {
  Float32Array, Float64Array, Uint8Array, Int8Array, Uint16Array, Int32Array, BigInt64Array,
};

/** The resume folder of an output path. */
export function resumeDirFor(output: string): string {
  return path.join(path.dirname(path.resolve(output)), `.${path.basename(output)}.w4a8-resume`);
}

/** sha256 of a JSON-able description (key order as given). */
export function fingerprintOf(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** The identity of an input file for the fingerprint: path, size and modification time. */
export function fileIdentity(file: string): { path: string; size: number; mtimeMs: number } {
  const st = fs.statSync(file);
  return { path: path.resolve(file), size: st.size, mtimeMs: st.mtimeMs };
}

/** Splits a tree into JSON (typed arrays replaced by references) and the arrays' bytes, concatenated. */
function encode(tree: unknown): { json: string; bin: Buffer } {
  const chunks: Buffer[] = [];
  let offset = 0;
  const json = JSON.stringify(tree, (_key, value: unknown) => {
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
      const name = value.constructor.name;
      if (!(name in ARRAY_TYPES)) throw new W4A8Error(`internal: resume state cannot hold a ${name}`);
      // 8-byte alignment, so each array can be viewed in place when read back.
      const pad = (8 - (offset % 8)) % 8;
      if (pad) chunks.push(Buffer.alloc(pad));
      offset += pad;
      const ref = { $a: name, o: offset, n: (value as Typed).length };
      chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      offset += value.byteLength;
      return ref;
    }
    return value;
  });
  return { json, bin: Buffer.concat(chunks, offset) };
}

function decode<T>(json: string, bin: Buffer): T {
  // One copy into an aligned ArrayBuffer; the arrays are views of it.
  const store = new ArrayBuffer(bin.byteLength);
  new Uint8Array(store).set(bin);
  return JSON.parse(json, (_key, value: unknown) => {
    const v = value as { $a?: string; o?: number; n?: number } | null;
    if (v && typeof v === 'object' && typeof v.$a === 'string' && Number.isInteger(v.o) && Number.isInteger(v.n)) {
      const Ctor = ARRAY_TYPES[v.$a];
      if (!Ctor) throw new W4A8Error(`resume state holds an unknown array type ${v.$a}`);
      return new Ctor(store, v.o!, v.n!);
    }
    return value;
  }) as T;
}


interface StateFile {
  version: number;
  fingerprint: string;
  blocksDone: number;
}

export class ResumeState {
  private constructor(
    readonly dir: string,
    private readonly fingerprint: string,
    /** Blocks finished by earlier runs (0 for a fresh state). */
    readonly blocksDone: number,
  ) {}

  /**
   * Opens the state in `dir`: an existing one must carry `fingerprint` (else a clear error: the run
   * differs from the interrupted one); none yet starts empty.
   */
  static open(dir: string, fingerprint: string): ResumeState {
    const stateFile = path.join(dir, 'state.json');
    if (!fs.existsSync(stateFile)) return new ResumeState(dir, fingerprint, 0);  // the folder comes with the first block
    let state: StateFile;
    try {
      state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as StateFile;
    } catch (err) {
      throw new W4A8Error(`cannot read the resume state ${stateFile}: ${(err as Error).message}; delete ${dir} to start over`);
    }
    if (state.version !== VERSION || !Number.isInteger(state.blocksDone) || state.blocksDone < 0) {
      throw new W4A8Error(`the resume state in ${dir} is not one this version writes; delete that folder to start over`);
    }
    if (state.fingerprint !== fingerprint) {
      throw new W4A8Error(
        `the resume state in ${dir} belongs to another run (different input files, options or calibration text); ` +
          `run the interrupted command again with --resume, or delete that folder to start over`,
      );
    }
    return new ResumeState(dir, fingerprint, state.blocksDone);
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Block `index`'s snapshot, as saveBlock wrote it. */
  loadBlock<T>(index: number): T {
    const base = this.file(`block-${String(index).padStart(4, '0')}`);
    try {
      return decode<T>(fs.readFileSync(`${base}.json`, 'utf8'), fs.readFileSync(`${base}.bin`));
    } catch (err) {
      if (err instanceof W4A8Error) throw err;
      throw new W4A8Error(`the resume state in ${this.dir} is damaged (${(err as Error).message}); delete it to start over`);
    }
  }

  /** The activations the block after the last finished one reads. */
  loadCarried<T>(): T {
    const base = this.file(`carried-${String(this.blocksDone - 1).padStart(4, '0')}`);
    try {
      return decode<T>(fs.readFileSync(`${base}.json`, 'utf8'), fs.readFileSync(`${base}.bin`));
    } catch (err) {
      throw new W4A8Error(`the resume state in ${this.dir} is damaged (${(err as Error).message}); delete it to start over`);
    }
  }

  /** Records block `index` as finished: its snapshot, then the carried activations, then the state. */
  saveBlock(index: number, snapshot: unknown, carried: unknown): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const base = this.file(`block-${String(index).padStart(4, '0')}`);
    const b = encode(snapshot);
    writeFileAtomic(`${base}.bin`, b.bin);
    writeFileAtomic(`${base}.json`, b.json);
    const carriedBase = this.file(`carried-${String(index).padStart(4, '0')}`);
    const c = encode(carried);
    writeFileAtomic(`${carriedBase}.bin`, c.bin);
    writeFileAtomic(`${carriedBase}.json`, c.json);
    const state: StateFile = { version: VERSION, fingerprint: this.fingerprint, blocksDone: index + 1 };
    writeFileAtomic(this.file('state.json'), JSON.stringify(state));
    if (index > 0) {
      const previous = this.file(`carried-${String(index - 1).padStart(4, '0')}`);
      fs.rmSync(`${previous}.bin`, { force: true });
      fs.rmSync(`${previous}.json`, { force: true });
    }
  }

  /** Removes the folder (the output is written). */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
