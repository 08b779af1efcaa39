// Outputs are written to a temporary file beside the target and renamed into place, so a
// crash or Ctrl-C never leaves a half-written model, and readers never see a partial file.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`);
}

/** Write `data` to `target` atomically. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Stage several files and commit them together: each is written to a temp name by the
 * caller (through `stage`), and `commit` renames them all; `abort` removes the temp files.
 */
export class AtomicFileSet {
  private readonly staged = new Map<string, string>();

  stage(target: string): string {
    const tmp = tempPathFor(target);
    this.staged.set(target, tmp);
    return tmp;
  }

  commit(): void {
    for (const [target, tmp] of this.staged) fs.renameSync(tmp, target);
    this.staged.clear();
  }

  abort(): void {
    for (const tmp of this.staged.values()) fs.rmSync(tmp, { force: true });
    this.staged.clear();
  }
}
