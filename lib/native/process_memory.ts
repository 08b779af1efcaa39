// This process's memory by owner: the kernel's resident counts (/proc/self/status), V8's heap and
// the ArrayBuffers it tracks, and the C heap as glibc sees it. Sequential calibration uses it to
// hand freed C-heap memory back between sessions and, under W4A8_MEMTRACE, to log where it goes.
import * as fs from 'node:fs';
import { native } from './binding';

export interface ProcessMemory {
  /** Resident bytes (VmRSS), of which anonymous (RssAnon) and file-backed (RssFile); 0 where /proc is absent. */
  rss: number;
  rssAnon: number;
  rssFile: number;
  /** V8: JS heap used, ArrayBuffer backing stores it knows of. */
  v8HeapUsed: number;
  arrayBuffers: number;
  /** glibc heap: allocated, freed but kept, and mmapped blocks (undefined off glibc). */
  mallocInUse?: number;
  mallocFree?: number;
  mallocMmapped?: number;
}

function statusKb(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

export function processMemory(): ProcessMemory {
  let status = '';
  try {
    status = fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    // not Linux: kernel counts stay 0
  }
  const v8 = process.memoryUsage();
  const m = native().mallocStats();
  return {
    rss: statusKb(status, 'VmRSS'),
    rssAnon: statusKb(status, 'RssAnon'),
    rssFile: statusKb(status, 'RssFile'),
    v8HeapUsed: v8.heapUsed,
    arrayBuffers: v8.arrayBuffers,
    ...(m.available ? { mallocInUse: m.inUseBytes, mallocFree: m.freeBytes, mallocMmapped: m.mmappedBytes } : {}),
  };
}

/** Gives freed C-heap memory back to the kernel (glibc malloc_trim(0)); false where nothing was released or off glibc. */
export function releaseFreedMemory(): boolean {
  return native().releaseFreedMemory();
}
