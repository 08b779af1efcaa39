#!/usr/bin/env node
// npm run test:sanitize: builds the native core and its C++ tests with AddressSanitizer and
// UndefinedBehaviorSanitizer (CMake option W4A8_SANITIZE; CUDA off in that build) into
// build/native-sanitize, runs ctest under them, and lists the tests' skip lines.
// Any sanitizer report fails the test that made it (halt_on_error / exitcode), hence the run.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const build = path.join(root, 'build', 'native-sanitize');
const env = {
  ...process.env,
  ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  LSAN_OPTIONS: `suppressions=${path.join(root, 'native', 'tests', 'lsan.supp')}:print_suppressions=0`,
};

function run(cmd, args) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env, cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run('cmake', ['-S', '.', '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DW4A8_SANITIZE=ON']);
run('cmake', ['--build', build, '-j', '2']);
run('ctest', ['--test-dir', build, '--output-on-failure']);
run(process.execPath, [path.join(root, 'scripts', 'print-test-skips.js'), build]);
