// Opening input files: only regular files are read. The check is an fstat of the descriptor we
// opened (not a stat of the path before opening, which a rename could race), and the open is
// non-blocking so that a FIFO cannot hang it; /dev/zero, a FIFO, a socket or a folder is refused
// with one line before a byte is read.
import * as fs from 'node:fs';
import { W4A8Error } from './errors';

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Why `st` is not acceptable as an input, or undefined when it is a regular file. */
export function notRegularReason(st: fs.Stats): string | undefined {
  return st.isFile() ? undefined : kindOf(st);
}

export interface RegularFile {
  fd: number;
  size: number;
  stat: fs.Stats;
}

/**
 * Opens `file` for reading and checks, on the descriptor, that it is a regular file. `label`
 * names it in errors ("model", "tokenizer", ...); `missing` replaces the message for a file
 * that does not exist. The caller closes `fd`.
 */
export function openRegularFile(file: string, label: string, missing?: string): RegularFile {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new W4A8Error(missing ?? `${label} ${file} does not exist`);
    if (code === 'EISDIR') throw new W4A8Error(`${label} ${file} is a folder, not a file`);
    if (code === 'ENXIO') throw new W4A8Error(`${label} ${file} is a socket or a device, not a regular file; give a regular file`);
    throw new W4A8Error(`cannot open ${label} ${file}: ${(err as Error).message}`);
  }
  try {
    const stat = fs.fstatSync(fd);
    const why = notRegularReason(stat);
    if (why !== undefined) throw new W4A8Error(`${label} ${file} is ${why}, not a regular file; give a regular file`);
    return { fd, size: stat.size, stat };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** fs.readSync and writeSync refuse more than 2 GiB - 1 per call; every transfer is chunked below this. */
export const IO_CHUNK = 1 << 30;

/** Reads exactly `count` bytes at `position` into `into[at..]`, in chunks; a short file is an error naming `file`. */
export function readExactly(fd: number, into: Uint8Array, at: number, count: number, position: number, file: string): void {
  let done = 0;
  while (done < count) {
    const n = fs.readSync(fd, into, at + done, Math.min(IO_CHUNK, count - done), position + done);
    if (n === 0) throw new W4A8Error(`${file} ended after ${position + done} bytes while ${count} were expected from offset ${position} (truncated, or changed while reading?)`);
    done += n;
  }
}

/** Writes all of `data` at `position`, in chunks. */
export function writeExactly(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    done += fs.writeSync(fd, data, done, Math.min(IO_CHUNK, data.length - done), position + done);
  }
}

/** The whole content of a regular file (at most `maxBytes`; Node's Buffer cannot hold more than 4 GiB). */
export function readRegularFile(file: string, label: string, maxBytes = 2 ** 31, missing?: string): Buffer {
  const f = openRegularFile(file, label, missing);
  try {
    if (f.size > maxBytes) throw new W4A8Error(`${label} ${file} is ${f.size} bytes, more than the ${maxBytes} this reader accepts`);
    const out = Buffer.allocUnsafe(f.size);
    readExactly(f.fd, out, 0, f.size, 0, file);
    return out;
  } finally {
    fs.closeSync(f.fd);
  }
}
