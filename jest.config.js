// Jest runs TypeScript through ts-jest. The custom environment hands the main realm's typed
// arrays and Error classes to the tests (onnxruntime-node and the addon check identity).
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/test/jest-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
    // onnx-buf is ESM-only: transpile it (and only it) to CommonJS for jest.
    'node_modules/onnx-buf/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true, module: 'commonjs', esModuleInterop: true } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!onnx-buf/)'],
  testTimeout: 120000,
  maxWorkers: 2,
};
