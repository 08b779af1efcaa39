// Progress for long work. On a terminal: a bar (cli-progress); otherwise plain lines; with
// --json: one JSON object per line. Always on stderr: stdout carries results only.
import * as cliProgress from 'cli-progress';
import { stderrColors as pc } from './colors';

export interface Progress {
  /** Begin a phase of `total` steps. */
  start(phase: string, total: number): void;
  /** Advance the current phase to `done` steps (absolute), with an optional detail. */
  update(done: number, detail?: string): void;
  /** End the current phase. */
  stop(): void;
  /** A log line (warning or note) that does not disturb the bar. */
  log(message: string, level?: 'info' | 'warn'): void;
}

export type ProgressMode = 'bar' | 'lines' | 'json' | 'silent';

export function chooseProgressMode(opts: { json?: boolean; quiet?: boolean }, stream = process.stderr): ProgressMode {
  if (opts.quiet) return 'silent';
  if (opts.json) return 'json';
  return stream.isTTY && !process.env.CI ? 'bar' : 'lines';
}

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): Progress {
  switch (mode) {
    case 'bar':
      return new BarProgress(stream);
    case 'lines':
      return new LineProgress(stream);
    case 'json':
      return new JsonProgress(stream);
    case 'silent':
      return silentProgress;
  }
}

export const silentProgress: Progress = {
  start() {},
  update() {},
  stop() {},
  log() {},
};

class BarProgress implements Progress {
  private bar: cliProgress.SingleBar | undefined;
  constructor(private readonly stream: NodeJS.WriteStream) {}
  start(phase: string, total: number): void {
    this.stop();
    this.bar = new cliProgress.SingleBar(
      { stream: this.stream, format: `${phase} [{bar}] {value}/{total} {detail}`, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, 0, { detail: '' });
  }
  update(done: number, detail = ''): void {
    this.bar?.update(done, { detail });
  }
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
  log(message: string, level: 'info' | 'warn' = 'info'): void {
    const text = level === 'warn' ? `${pc.yellow('warning:')} ${message}` : message;
    if (this.bar) this.stream.write('\n');
    this.stream.write(text + '\n');
  }
}

class LineProgress implements Progress {
  private phase = '';
  private total = 0;
  private lastPrinted = -1;
  private lastTime = 0;
  constructor(private readonly stream: NodeJS.WriteStream) {}
  start(phase: string, total: number): void {
    this.phase = phase;
    this.total = total;
    this.lastPrinted = -1;
    this.lastTime = 0;
  }
  update(done: number, detail?: string): void {
    // At most one line a second, plus the last one, so logs stay readable.
    const now = Date.now();
    if (done < this.total && now - this.lastTime < 1000) return;
    if (done === this.lastPrinted) return;
    this.lastPrinted = done;
    this.lastTime = now;
    this.stream.write(`${this.phase}: ${done}/${this.total}${detail ? ` ${detail}` : ''}\n`);
  }
  stop(): void {}
  log(message: string, level: 'info' | 'warn' = 'info'): void {
    this.stream.write(level === 'warn' ? `warning: ${message}\n` : `${message}\n`);
  }
}

class JsonProgress implements Progress {
  private phase = '';
  private total = 0;
  constructor(private readonly stream: NodeJS.WriteStream) {}
  start(phase: string, total: number): void {
    this.phase = phase;
    this.total = total;
    this.stream.write(JSON.stringify({ event: 'start', phase, total }) + '\n');
  }
  update(done: number, detail?: string): void {
    this.stream.write(JSON.stringify({ event: 'progress', phase: this.phase, done, total: this.total, detail }) + '\n');
  }
  stop(): void {
    // Only a started phase ends: a failure before any work prints just its error line.
    if (!this.phase) return;
    this.stream.write(JSON.stringify({ event: 'end', phase: this.phase }) + '\n');
    this.phase = '';
  }
  log(message: string, level: 'info' | 'warn' = 'info'): void {
    this.stream.write(JSON.stringify({ event: 'log', level, message }) + '\n');
  }
}
