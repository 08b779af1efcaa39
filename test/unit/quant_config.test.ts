// Configuration resolution, labels, and which export formats carry which configurations.
import { UsageError } from '../../lib/util/errors';
import { checkExportSupports } from '../../lib/export/compat';
import { configLabel, resolveConfig } from '../../lib/quant/config';
import { GlobSet } from '../../lib/quant/glob';

describe('resolveConfig', () => {
  it('defaults int4 to asymmetric g32 with int8 activations, and fp4 to symmetric', () => {
    const c = resolveConfig({});
    expect(c).toMatchObject({ method: 'rtn', wformat: 'int4', groupSize: 32, symmetric: false, aformat: 'int8', grouping: 'oc' });
    expect(resolveConfig({ wformat: 'fp4' }).symmetric).toBe(true);
    expect(resolveConfig({ symmetric: true }).symmetric).toBe(true);
  });
  it('refuses impossible combinations with a message naming the fix', () => {
    expect(() => resolveConfig({ wformat: 'fp4', symmetric: false })).toThrow(/fp4 weights are symmetric/);
    expect(() => resolveConfig({ method: 'awq', actOrder: true })).toThrow(/--act-order applies to --method gptq/);
    expect(() => resolveConfig({ groupSize: 48 })).toThrow(UsageError);
    expect(() => resolveConfig({ method: 'nope' as never })).toThrow(/method must be one of rtn, awq, gptq/);
  });
  it('labels configurations distinctly', () => {
    const a = configLabel(resolveConfig({ method: 'gptq', groupSize: 0, aformat: 'none', actOrder: true }));
    expect(a).toBe('gptq int4-asym per-channel A16 act-order');
    expect(configLabel(resolveConfig({ wformat: 'fp4', aformat: 'fp8', grouping: 'ic' }))).toBe('rtn fp4 g32 A8 fp8 ic');
  });
});

describe('checkExportSupports', () => {
  it('lets sim carry everything', () => {
    expect(() => checkExportSupports('sim', resolveConfig({ wformat: 'fp4', grouping: 'auto', aformat: 'fp8' }))).not.toThrow();
  });
  it.each([
    ['matmulnbits', { wformat: 'fp4' }, /fp4 weights/],
    ['qdq', { grouping: 'ic' }, /--grouping ic/],
    ['matmulnbits', { aformat: 'fp8' }, /--aformat fp8/],
  ] as const)('refuses %s with %j, naming sim', (format, partial, why) => {
    const run = () => checkExportSupports(format, resolveConfig(partial));
    expect(run).toThrow(why);
    expect(run).toThrow(/--format sim/);
    expect(run).toThrow(UsageError);
  });
  it('lets every format carry per-channel weights (stored in blocks of 128 whatever K is)', () => {
    for (const format of ['matmulnbits', 'qdq', 'w4a8', 'sim'] as const) {
      expect(() => checkExportSupports(format, resolveConfig({ groupSize: 0 }))).not.toThrow();
    }
  });
});

describe('GlobSet', () => {
  it('matches * and ? against any of the names', () => {
    const g = new GlobSet(['*lm_head*', 'layers.?.mlp.*']);
    expect(g.matches('/lm_head/MatMul')).toBe(true);
    expect(g.matches('x', 'layers.3.mlp.up_proj.weight')).toBe(true);
    expect(g.matches('layers.10.mlp.up_proj.weight')).toBe(false);
    expect(() => new GlobSet([''])).toThrow(TypeError);
  });
});
