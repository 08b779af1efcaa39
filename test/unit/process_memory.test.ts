// The process's memory by owner: /proc's resident counts, V8's ArrayBuffers and glibc's heap see a
// fresh 64 MiB array (glibc serves blocks that large with mmap); malloc_trim is callable at any time.
import { processMemory, releaseFreedMemory } from '../../lib/native/process_memory';

const linux = process.platform === 'linux';
if (!linux) console.warn(`process memory test skipped: /proc counts need Linux (this is ${process.platform})`);
const testIf = linux ? test : test.skip;

const MiB = 2 ** 20;

testIf('a touched 64 MiB array shows in RssAnon, in V8 ArrayBuffers and (glibc) in mmapped heap blocks', () => {
  const before = processMemory();
  expect(before.rss).toBeGreaterThan(0);
  expect(before.rssAnon).toBeGreaterThan(0);
  // VmRSS = RssAnon + RssFile + RssShmem.
  expect(before.rssAnon + before.rssFile).toBeLessThanOrEqual(before.rss);
  const a = new Float32Array(16 * MiB);
  for (let i = 0; i < a.length; i += 1024) a[i] = i + 1;
  const after = processMemory();
  // Within 1 MiB: the worker's other (small) ArrayBuffers may be collected in between (CI saw 64 MiB - 3 KiB).
  expect(after.arrayBuffers - before.arrayBuffers).toBeGreaterThanOrEqual(63 * MiB);
  expect(after.rssAnon - before.rssAnon).toBeGreaterThanOrEqual(56 * MiB);
  if (before.mallocMmapped !== undefined) expect(after.mallocMmapped! - before.mallocMmapped).toBeGreaterThanOrEqual(64 * MiB);
  else console.warn('mallocinfo2 not available (not glibc 2.33+): C heap counts not checked');
  expect(a[1024]).toBe(1025);
});

test('releaseFreedMemory returns whether anything went back, and never throws', () => {
  expect(typeof releaseFreedMemory()).toBe('boolean');
});
