// The import rules of lib/ (.dependency-cruiser.cjs): the real tree passes, and a tree with an
// import up a floor, a sibling import and a circle fails, each named by its rule.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const config = path.join(root, '.dependency-cruiser.cjs');
const depcruise = path.join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

function cruise(cwd: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [depcruise, '--config', config, '--output-type', 'err', 'lib'], { cwd, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function write(dir: string, file: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), text);
}

describe('lib/ floors', () => {
  test('the checked-in lib/ follows the rules', () => {
    const r = cruise(root);
    expect(r.output).not.toMatch(/error/);
    expect(r.status).toBe(0);
  });

  test('an import up a floor, a sibling import and a circle are each reported', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-floors-'));
    try {
      write(dir, 'tsconfig.json', JSON.stringify({ compilerOptions: { module: 'commonjs', strict: true } }));
      write(dir, 'lib/pipeline/quantize.ts', 'export const run = () => 1;\n');
      write(dir, 'lib/quant/rtn.ts', "import { run } from '../pipeline/quantize';\nexport const q = () => run();\n");
      write(dir, 'lib/calib/stats.ts', "import { q } from '../quant/rtn';\nexport const s = () => q();\n");
      write(dir, 'lib/util/a.ts', "import { b } from './b';\nexport const a = (): number => b();\n");
      write(dir, 'lib/util/b.ts', "import { a } from './a';\nexport const b = (): number => a();\n");
      const r = cruise(dir);
      expect(r.status).not.toBe(0);
      expect(r.output).toMatch(/floor-quant-imports-up: lib\/quant\/rtn\.ts → lib\/pipeline\/quantize\.ts/);
      expect(r.output).toMatch(/floor-calib-imports-sibling: lib\/calib\/stats\.ts → lib\/quant\/rtn\.ts/);
      expect(r.output).toMatch(/no-circular: lib\/util\/(a|b)\.ts/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
