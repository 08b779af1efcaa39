// Containment by real path: a file named by a model (external data, the tokenizer beside it)
// must lie inside the model's folder after every symbolic link is followed. The check runs on
// the path the opened descriptor really refers to (/proc/self/fd on Linux), so swapping a link
// between the check and the open cannot escape it. Hard links are inside: they are the folder's
// own directory entries.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from './errors';
import { openRegularFile, type RegularFile } from './regular_file';

function realDir(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch (err) {
    throw new W4A8Error(`cannot resolve folder ${dir}: ${(err as Error).message}`);
  }
}

/** True when `real` (an absolute, link-free path) is `realFolder` itself or below it. */
export function isInside(realFolder: string, real: string): boolean {
  const rel = path.relative(realFolder, real);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function descriptorPath(fd: number, file: string): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return fs.realpathSync(file); // no procfs: the path's real form (checked just after the open)
  }
}

/**
 * Opens `file` (which must be a regular file) and checks that it really lies inside `dir`.
 * `label` names the file in errors; `owner` names what referred to it (the model).
 */
export function openContained(dir: string, file: string, label: string, owner: string): RegularFile {
  const folder = realDir(dir);
  const f = openRegularFile(file, label);
  try {
    const real = descriptorPath(f.fd, file);
    if (!isInside(folder, real)) {
      throw new W4A8Error(
        `${label} ${file} resolves to ${real}, outside ${owner}'s folder ${folder} (through a symbolic link); ` +
          `files a model refers to must lie inside its folder: copy the file there`,
      );
    }
    return f;
  } catch (err) {
    fs.closeSync(f.fd);
    throw err;
  }
}

/** Whether `file` exists and resolves inside `dir` (for optional files found beside a model). */
export function resolvesInside(dir: string, file: string): boolean {
  try {
    return isInside(fs.realpathSync(dir), fs.realpathSync(file));
  } catch {
    return false;
  }
}
