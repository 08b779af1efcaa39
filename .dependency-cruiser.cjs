// The floors of lib/ (docs/ARCHITECTURE.md), top to bottom. A file imports from its own folder or
// from a lower floor; never from a higher floor, never from a sibling folder on its own floor, and
// no import circle anywhere. `npm test` runs this check (npm run check:floors).
const FLOORS = [
  ['cli'],
  ['pipeline'],
  ['eval'],
  ['export'],
  ['quant', 'calib', 'import', 'bench', 'adapter'],
  ['ort'],
  ['onnx', 'tokenize'],
  ['native'],
  ['util'],
];

// onnxruntime-node is opened in one place (the ORT floor); bench also measures it directly.
const ORT_IMPORTERS = ['ort', 'bench'];

const folder = (name) => `^lib/${name}/`;
const rules = [];
FLOORS.forEach((floor, i) => {
  const above = FLOORS.slice(0, i).flat();
  for (const name of floor) {
    if (above.length) {
      rules.push({
        name: `floor-${name}-imports-up`,
        comment: `lib/${name} is below ${above.join(', ')}: it may not import from them`,
        severity: 'error',
        from: { path: folder(name) },
        to: { path: `^lib/(${above.join('|')})/` },
      });
    }
    const siblings = floor.filter((other) => other !== name);
    if (siblings.length) {
      rules.push({
        name: `floor-${name}-imports-sibling`,
        comment: `lib/${name} shares its floor with ${siblings.join(', ')}: stages on one floor do not call each other`,
        severity: 'error',
        from: { path: folder(name) },
        to: { path: `^lib/(${siblings.join('|')})/` },
      });
    }
  }
});

module.exports = {
  forbidden: [
    ...rules,
    {
      name: 'no-circular',
      comment: 'an import circle ties two modules into one; split out what both need',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'onnxruntime-only-in-ort',
      comment: 'every ONNX Runtime session is created in lib/ort (bench measures ORT directly)',
      severity: 'error',
      from: { path: '^lib/', pathNot: `^lib/(${ORT_IMPORTERS.join('|')})/` },
      to: { path: 'node_modules/onnxruntime-node/' },
    },
    {
      name: 'public-api-is-not-imported',
      comment: 'lib/index.ts re-exports for users; library modules import the module that defines a thing',
      severity: 'error',
      from: { path: '^lib/.+/' },
      to: { path: '^lib/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['cjs', 'es6'],
  },
};
