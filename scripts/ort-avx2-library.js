#!/usr/bin/env node
// A copy of onnxruntime-node's libonnxruntime.so.1 whose CPU feature probes see what an AVX2-only x86
// CPU reports (AMD EPYC Zen 2 / Zen 3: AVX2 and FMA, no AVX-512, no AVX-VNNI), so that ONNX Runtime runs
// its AVX2 kernels on a machine that has AVX-512. Issue 9 asks for its targets on AVX2-only CPUs too; on
// an AVX-512 machine ONNX Runtime otherwise always takes its AVX-512 VNNI kernels, and this VM cannot
// mask CPUID (no CPUID faulting). With our kernels forced to AVX2 as well:
//   node scripts/ort-avx2-library.js                  # writes build/ort-avx2/libonnxruntime.so.1
//   W4A8_ISA=avx2 W4A8_ORT_LIBRARY=build/ort-avx2/libonnxruntime.so.1 node bin/w4a8.js bench e2e ...
// compares the two AVX2 paths in one process (bench e2e runs every variant, ONNX Runtime's too, in the
// addon's sessions, which open W4A8_ORT_LIBRARY). onnxruntime-node's own sessions (`bench cpu`) take the
// copy through the loader instead: LD_PRELOAD=<the copy> maps it in place of the stock library (same
// soname). It is a stand-in for such a CPU: the same instructions on this machine's cores, caches and
// memory, not an AVX2-only machine's. scripts/ort-isa-sample.sh shows which instructions a library runs.
//
// The patches (byte patterns of onnxruntime-node 1.30's Linux x64 library; each must match exactly the
// expected number of times, or nothing is written and the pattern is named):
// - `xgetbv; mov %eax,%eax` (MLAS's platform probe, and cpuinfo's): the mov becomes `and $0x1f,%al`,
//   clearing XCR0's AVX-512 state bits (opmask, ZMM_Hi256, Hi16_ZMM), as on an OS without AVX-512. xgetbv
//   already zero-extends into rax, so the mov did nothing else.
// - ONNX Runtime's CPUIDInfo: `and $0xe6,%r14d` before `cmp $0xe6,%r14d` (its AVX-512 test of XCR0)
//   masks with 0x06 instead, so the test fails.
// - MLAS's AVX-VNNI test after cpuid(7, 1), `test $0x10,%al`, tests no bit (Zen 2 / 3 have no AVX-VNNI;
//   with it MLAS would take its AVX-VNNI int8 kernels).
//   node scripts/ort-avx2-library.js [--out <file>] [--library <libonnxruntime.so.1>]
// (--library: default onnxruntime-node's, never W4A8_ORT_LIBRARY's. Needs dist/: npm run build:ts.)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { onnxruntimeNodeLibraryPath } = require('../dist/ort/engine_session');

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const known = new Set(['--out', '--library']);
if (args.length % 2 !== 0 || args.some((a, i) => (i % 2 === 0 ? !known.has(a) : a.startsWith('--')))) {
  process.stderr.write('usage: node scripts/ort-avx2-library.js [--out build/ort-avx2/libonnxruntime.so.1] [--library <libonnxruntime.so.1>]\n');
  process.exit(2);
}

const PATCHES = [
  { name: 'xgetbv; mov %eax,%eax', find: '0f01d0' + '89c0', at: 3, put: '241f', count: 2 },
  { name: 'CPUIDInfo: and $0xe6,%r14d; ...; cmp $0xe6,%r14d', find: '4181e6e6000000' + '31f6' + '31c9' + '4181fee6000000', at: 3, put: '06', count: 1 },
  { name: 'MLAS: mov $1,%ecx; cpuid; test $0x10,%al; je', find: 'b901000000' + '0fa2' + 'a810' + '74', at: 8, put: '00', count: 1 },
];

function offsets(buf, needle) {
  const found = [];
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + 1)) found.push(i);
  return found;
}

function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('only for Linux x64 (the patterns are x86-64 code)');
  const input = path.resolve(opt('library') ?? onnxruntimeNodeLibraryPath());
  const out = path.resolve(opt('out') ?? path.join(__dirname, '..', 'build', 'ort-avx2', 'libonnxruntime.so.1'));
  if (out === input) throw new Error('--out is the input library; the stock library is never modified');
  const version = (() => {
    try { return require('onnxruntime-node/package.json').version; } catch { return 'unknown'; }
  })();
  const buf = fs.readFileSync(input);
  const edits = [];
  for (const p of PATCHES) {
    const at = offsets(buf, Buffer.from(p.find, 'hex'));
    if (at.length !== p.count) {
      throw new Error(`pattern "${p.name}" occurs ${at.length} times in ${input}, expected ${p.count} (written for onnxruntime-node 1.30's library; installed: ${version}); nothing written`);
    }
    for (const o of at) edits.push({ offset: o + p.at, bytes: Buffer.from(p.put, 'hex'), name: p.name });
  }
  for (const e of edits) e.bytes.copy(buf, e.offset);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, buf, { mode: 0o755 });
  fs.renameSync(tmp, out);
  for (const e of edits) process.stderr.write(`patched ${e.name} at 0x${e.offset.toString(16)}\n`);
  process.stderr.write(`from ${input} (onnxruntime-node ${version})\n`);
  process.stdout.write(`${out}\n`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`ort-avx2-library: ${e.message}\n`);
  process.exit(1);
}
