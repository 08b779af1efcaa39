// W4A8_MEMTRACE=<file>: one JSON line per named point of a long pipeline with the process's memory
// by owner (process_memory.ts), to tell where a peak sits and who holds it; with
// W4A8_MEMTRACE_SNAPSHOT=<text>, a V8 heap snapshot beside the file at each point whose name
// contains the text (what retains the ArrayBuffers). Off by default.
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import { processMemory } from './process_memory';

const started = Date.now();

export function memTrace(point: string): void {
  const file = process.env.W4A8_MEMTRACE;
  if (!file) return;
  const mb = (b: number | undefined) => (b === undefined ? undefined : Math.round(b / 2 ** 20));
  const m = processMemory();
  const line = {
    t: (Date.now() - started) / 1000,
    point,
    rssMiB: mb(m.rss),
    anonMiB: mb(m.rssAnon),
    fileMiB: mb(m.rssFile),
    v8HeapMiB: mb(m.v8HeapUsed),
    arrayBuffersMiB: mb(m.arrayBuffers),
    mallocInUseMiB: mb(m.mallocInUse),
    mallocFreeMiB: mb(m.mallocFree),
    mallocMmappedMiB: mb(m.mallocMmapped),
  };
  fs.appendFileSync(file, JSON.stringify(line) + '\n');
  const snap = process.env.W4A8_MEMTRACE_SNAPSHOT;
  if (snap && point.includes(snap)) {
    v8.writeHeapSnapshot(`${file}.${Math.round(line.t)}.heapsnapshot`);
  }
}
