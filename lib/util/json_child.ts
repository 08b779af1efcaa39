// One step run in a child Node process that prints its result as JSON on stdout: the benchmarks
// measure each variant's or method's memory in a process of its own. A cancelled token stops the
// child (SIGINT) and rejects with the cancellation.
import { spawn } from 'node:child_process';
import type { CancelToken } from './cancel';
import { W4A8Error } from './errors';

/**
 * Runs `script` (node -e) and resolves with the JSON it printed; `label` names it in errors.
 * `onStderrLine` sees each line the child writes on stderr as it comes (its progress).
 */
export function runJsonChild<T>(script: string, label: string, cancel: CancelToken, onStderrLine?: (line: string) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let pending = '';
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      err += text;
      if (!onStderrLine) return;
      const lines = (pending + text).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onStderrLine(line);
    });
    const poll = setInterval(() => {
      if (cancel.isCancelled) child.kill('SIGINT');
    }, 200);
    child.on('close', (code) => {
      clearInterval(poll);
      if (cancel.isCancelled) {
        try {
          cancel.throwIfCancelled();
        } catch (e) {
          return reject(e);
        }
      }
      if (code !== 0) return reject(new W4A8Error(`${label} failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`));
      try {
        resolve(JSON.parse(out) as T);
      } catch {
        reject(new W4A8Error(`${label} printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}
