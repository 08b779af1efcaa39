// `w4a8 inspect`: the --json shape on the shared GPT-2 model and on an external-data model,
// the human table, and the one-line error for a missing file.
import { spawnSync } from 'node:child_process';
import { toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectCommand } from '../../lib/cli/commands/inspect';
import { DataType } from '../../lib/onnx/dtype';
import { findQuantizableLayers } from '../../lib/onnx/graph';
import { loadModel, saveModel } from '../../lib/onnx/model';
import { PAST_ONNX, REPO_ROOT, tempDir, tinyMlp } from '../helpers/onnx_fixtures';
import { assertBuiltCli } from '../helpers/built_cli';

async function runInspect(model: string, json: boolean): Promise<{ stdout: string; stderr: string; exitCode: number | string | undefined }> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const savedExit = process.exitCode;
  process.exitCode = undefined;
  try {
    await (inspectCommand.handler as (a: unknown) => Promise<void>)({ model, json, quiet: true, _: ['inspect'], $0: 'w4a8' });
    return { stdout, stderr, exitCode: process.exitCode };
  } finally {
    process.exitCode = savedExit;
    out.mockRestore();
    err.mockRestore();
  }
}

describe('w4a8 inspect', () => {
  it('--json on past.onnx: exactly the documented keys, counts that match the graph', async () => {
    const { stdout, exitCode } = await runInspect(PAST_ONNX, true);
    expect(exitCode).toBeUndefined();
    const j = JSON.parse(stdout);
    expect(Object.keys(j)).toEqual(['opsets', 'ops', 'externalData', 'weights']);
    expect(j.opsets).toEqual({ 'ai.onnx': 11, 'com.microsoft': 1 });
    const model = loadModel(PAST_ONNX);
    expect(Object.values(j.ops as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(model.proto.graph!.node.length);
    expect(j.ops.MatMul).toBe(16);
    expect(j.ops['com.microsoft.Attention']).toBe(5);
    expect(j.externalData).toBe(false);
    for (const w of j.weights) expect(Object.keys(w).sort()).toEqual(['dtype', 'external', 'name', 'node', 'quantizable', 'shape']);
    const quantizable = j.weights.filter((w: { quantizable: boolean }) => w.quantizable).map((w: { name: string }) => w.name);
    expect(quantizable).toEqual(findQuantizableLayers(model).map((l) => l.weightName));
    const lmHead = j.weights.find((w: { name: string }) => w.name === 'onnx::MatMul_1400');
    expect(lmHead).toEqual({ name: 'onnx::MatMul_1400', node: '/lm_head/MatMul', shape: [32, 1000], dtype: 'FLOAT', external: false, quantizable: true });
    // The fused QKV weight feeds a contrib Attention op, not a MatMul: listed, not quantizable.
    expect(j.weights.find((w: { name: string }) => w.name === 'transformer.h.0.attn.c_attn.weight')).toMatchObject({ node: 'GptAttention_0', quantizable: false });
  });

  it('reports external data and prints a readable table', async () => {
    const dir = tempDir('inspect');
    const file = path.join(dir, 'mlp.onnx');
    saveModel(tinyMlp(DataType.FLOAT16, 64, 32, 16, 5).model, file, { externalData: 'always' });
    const j = JSON.parse((await runInspect(file, true)).stdout);
    expect(j.externalData).toBe(true);
    expect(j.weights.map((w: { name: string; external: boolean; dtype: string }) => [w.name, w.external, w.dtype])).toEqual([
      ['w1', true, 'FLOAT16'],
      ['w2', true, 'FLOAT16'],
    ]);
    const human = (await runInspect(file, false)).stdout;
    expect(human).toMatch(/external data: yes/);
    expect(human).toMatch(/^name\s+node\s+shape\s+dtype\s+external\s+quantizable$/m);
    expect(human).toMatch(/^w1\s+Cast#0\s+64x32\s+FLOAT16\s+yes\s+no$/m);
    fs.rmSync(dir, { recursive: true });
  });

  it('a missing model: one line on stderr, exit code 1', async () => {
    const r = await runInspect('/nonexistent/x.onnx', true);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('/nonexistent/x.onnx does not exist');
  });

  it('a model ONNX Runtime would refuse: inspect names the first fault on one line and exits 1', async () => {
    const dir = tempDir('inspect-broken');
    try {
      const { model } = tinyMlp(DataType.FLOAT, 32, 16, 8, 41);
      const file = path.join(dir, 'model.onnx');
      saveModel(model, file, { externalData: 'always', inlineThresholdBytes: 0 });
      const side = path.join(dir, 'model.onnx_data');
      const size = fs.statSync(side).size;
      expect((await runInspect(file, true)).exitCode).toBeUndefined();
      // A side file shorter than the ranges the tensors name (ORT: "external data ... out of bounds").
      fs.truncateSync(side, size - 4);
      const short = await runInspect(file, true);
      expect(short.exitCode).toBe(1);
      expect(short.stdout).toBe('');
      expect(short.stderr.trim().split('\n')).toHaveLength(1);
      expect(short.stderr).toMatch(new RegExp(`is not a loadable ONNX model: tensor "\\w+" needs bytes \\d+\\.\\.${size} of ${side.replace(/[/.]/g, '\\$&')}, which has only ${size - 4} bytes`));
      fs.rmSync(side);
      const missing = await runInspect(file, true);
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toContain(`${side} does not exist`);
      // An initializer whose dims disagree with its data.
      const inline = tinyMlp(DataType.FLOAT, 32, 16, 8, 42).model;
      inline.proto.graph!.initializer.find((t) => t.name === 'w1')!.dims = [32n, 15n];
      const bad = path.join(dir, 'dims.onnx');
      fs.writeFileSync(bad, toBinary(ModelProtoSchema, inline.proto));
      const dims = await runInspect(bad, false);
      expect(dims.exitCode).toBe(1);
      expect(dims.stderr).toMatch(/is not a loadable ONNX model: initializer "w1" \(FLOAT \[32, 15\]\) needs 1920 bytes of raw_data; it holds 2048/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the built CLI prints the same JSON (node bin/w4a8.js)', async () => {
    assertBuiltCli();
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'w4a8.js'), 'inspect', PAST_ONNX, '--json'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse((await runInspect(PAST_ONNX, true)).stdout));
  });
});
