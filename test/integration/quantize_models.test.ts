// quantizeModel end to end: tiny-random-gpt2 (GenAI export, contrib ops, opset 11) and a toy
// decoder with fp16 weights in external data, through every export format; each output must
// load and run in onnxruntime-node and give finite logits.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDecoder } from '../../lib/ort/session';
import { DataType } from '../../lib/onnx/dtype';
import { hasExternalData, loadModel } from '../../lib/onnx/model';
import { initializerMap } from '../../lib/onnx/graph';
import { quantizeModel } from '../../lib/pipeline/quantize';
import type { ExportFormat, QuantConfig } from '../../lib/quant/config';
import { CALIB_TEXT, writeToyLm } from '../helpers/quant_fixtures';
import { SHARED_DIR } from '../helpers/shared_paths';

const GPT2 = path.join(SHARED_DIR, 'models', 'tiny-random-gpt2-fp32');
const haveGpt2 = fs.existsSync(path.join(GPT2, 'past.onnx'));
if (!haveGpt2) console.warn(`gpt2 quantize tests skipped: ${GPT2} is absent`);

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w4a8-quantize-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function runsFinite(file: string, ids: number[], sessionConfig?: Record<string, string>): Promise<void> {
  const runner = await openDecoder(file, { sessionConfig });
  try {
    const out = await runner.run(ids, ['logits']);
    const data = out.logits.data as Float32Array | Uint16Array;
    expect(out.logits.dims[out.logits.dims.length - 2]).toBe(ids.length);
    if (data instanceof Float32Array) expect(data.every((x) => Number.isFinite(x))).toBe(true);
    else expect(data.every((h) => (h & 0x7c00) !== 0x7c00)).toBe(true); // no fp16 Inf/NaN
  } finally {
    await runner.release();
  }
}

const describeGpt2 = haveGpt2 ? describe : describe.skip;
describeGpt2('tiny-random-gpt2', () => {
  // Its 1000-entry vocabulary only fits the commonest GPT-2 pieces.
  const calib = 'in the end it is on the way to the end and he is at the end\n\nhe said that it was on and in at the of\n';
  it.each(['matmulnbits', 'qdq', 'sim'] as ExportFormat[])('rtn int4 g32 -> %s runs in ORT', async (format) => {
    const out = path.join(dir, `gpt2-${format}.onnx`);
    const summary = await quantizeModel({
      input: path.join(GPT2, 'past.onnx'),
      output: out,
      method: 'rtn',
      groupSize: 32,
      aformat: format === 'qdq' ? 'none' : 'int8',
      format,
      calibText: calib,
      tokenizer: path.join(GPT2, 'tokenizer.json'),
    });
    expect(summary.layers.map((l) => l.weight)).toHaveLength(15); // 5 blocks x (attn proj, fc, proj); lm_head kept
    expect(summary.excluded.map((e) => e.name)).toEqual(['/lm_head/MatMul']);
    expect(fs.existsSync(`${out}.report.json`)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);
    const ops = loadModel(out).proto.graph!.node.map((n) => n.opType);
    if (format === 'matmulnbits') expect(ops.filter((o) => o === 'MatMulNBits')).toHaveLength(15);
    if (format === 'qdq') expect(ops.filter((o) => o === 'DequantizeLinear')).toHaveLength(15);
    if (format === 'sim') expect(ops.filter((o) => o === 'Round')).toHaveLength(15);
    await runsFinite(out, [10, 11, 12, 13], summary.export.sessionConfig);
  });
  it('refuses calibration text whose ids fall outside the model vocabulary, writing nothing', async () => {
    const out = path.join(dir, 'gpt2-bad.onnx');
    await expect(
      quantizeModel({ input: path.join(GPT2, 'past.onnx'), output: out, method: 'awq', format: 'sim', calibText: 'Once upon a time a zebra called Xylophone.', tokenizer: path.join(GPT2, 'tokenizer.json') }),
    ).rejects.toThrow(/outside the model's vocabulary \[0, 1000\); the tokenizer does not fit/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('toy decoder with fp16 weights in external data', () => {
  let input: string;
  beforeAll(() => {
    input = writeToyLm(path.join(dir, 'toy16'), { dtype: 'float16', external: true });
  });
  const cases: [ExportFormat, Partial<QuantConfig>][] = [
    ['matmulnbits', { method: 'awq', aformat: 'int8' }],
    ['matmulnbits', { method: 'gptq', aformat: 'none', symmetric: true }],
    ['qdq', { method: 'rtn', aformat: 'none' }],
    ['qdq', { method: 'gptq', aformat: 'int8', groupSize: 0 }],
    ['sim', { method: 'awq', aformat: 'fp8', wformat: 'fp4' }],
    ['sim', { method: 'rtn', aformat: 'int8', grouping: 'auto' }],
    ['sim', { method: 'gptq', aformat: 'int8', grouping: 'ic' }],
    ['sim', { method: 'awq', aformat: 'none', grouping: 'ic' }],
    ['sim', { method: 'gptq', aformat: 'none', grouping: 'auto' }],
    ['sim', { method: 'awq', aformat: 'int8', grouping: 'auto' }],
  ];
  it('auto grouping keeps, per GPTQ layer, the lower calibration error of oc and ic', async () => {
    const errors: Record<string, (number | undefined)[]> = {};
    const chosen: string[] = [];
    for (const grouping of ['oc', 'ic', 'auto'] as const) {
      const outDir = fs.mkdtempSync(path.join(dir, `auto-${grouping}-`));
      const summary = await quantizeModel({ input, output: path.join(outDir, 'q.onnx'), format: 'sim', method: 'gptq', aformat: 'none', grouping, calib: CALIB_TEXT, calibTokens: 1024, calibSeqlen: 128 });
      errors[grouping] = summary.layers.map((l) => l.errorAfter);
      if (grouping === 'auto') chosen.push(...summary.layers.map((l) => l.grouping));
    }
    errors.auto.forEach((e, i) => {
      const [oc, ic] = [errors.oc[i]!, errors.ic[i]!];
      expect(e).toBeCloseTo(Math.min(oc, ic), 12);
      expect(chosen[i]).toBe(ic < oc ? 'ic' : 'oc');
    });
  });

  it.each(cases)('%s %j keeps fp16 and external data, and runs in ORT', async (format, partial) => {
    const outDir = fs.mkdtempSync(path.join(dir, 'out-'));
    const out = path.join(outDir, 'q.onnx');
    const summary = await quantizeModel({ input, output: out, format, ...partial, calib: CALIB_TEXT, calibTokens: 1024, calibSeqlen: 128 });
    expect(summary.layers.map((l) => l.name)).toEqual(['q_proj/MatMul', 'k_proj/MatMul', 'down_proj/MatMul']);
    for (const l of summary.layers) {
      if (partial.method !== 'rtn') expect(l.errorAfter!).toBeLessThanOrEqual(l.errorBefore! * 1.0001);
      // The method itself runs along N: errors are measured against RTN along N, not replaced by it.
      if (partial.grouping === 'ic') expect(l).toMatchObject({ grouping: 'ic', method: partial.method });
      if (partial.grouping === 'auto') expect(l.method).toBe(partial.method);
      expect(Number.isFinite(l.errorAfter)).toBe(true);
    }
    const q = loadModel(out);
    expect(hasExternalData(q)).toBe(true);
    expect(fs.existsSync(path.join(outDir, 'q.onnx_data'))).toBe(true);
    expect(fs.existsSync(path.join(outDir, 'tok512.bin'))).toBe(true);
    const inits = initializerMap(q);
    expect(inits.get('lm_head.weight')!.dataType).toBe(DataType.FLOAT16);
    if (format === 'sim') expect(inits.get('down_proj.weight')!.dataType).toBe(DataType.FLOAT16);
    if (partial.method === 'awq') {
      // q and k share the normed input: 1/s folds into the norm weight, no extra Mul.
      expect(summary.layers[0].awqFolded).toBe(true);
      expect(q.proto.graph!.node.some((n) => n.name.includes('AwqScale'))).toBe(true); // down_proj's input has no norm: explicit Mul
    }
    await runsFinite(out, [1, 200, 17, 301, 5], summary.export.sessionConfig);
  });
});
