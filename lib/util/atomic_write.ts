// Outputs are written to a temporary file beside the target and renamed into place, so a
// crash or Ctrl-C never leaves a half-written model, and readers never see a partial file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkOutputPath } from './output_set';

export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`);
}

/**
 * Write `data` to `target` atomically. A target that exists and is not a regular file (a FIFO,
 * a device, a folder) is refused, never renamed over. Files that belong together go through
 * an OutputSet instead (util/output_set).
 */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  checkOutputPath(target);
  const tmp = tempPathFor(target);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
