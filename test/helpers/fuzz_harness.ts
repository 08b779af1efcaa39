// The CLI fuzzer behind test/integration/fuzz_cli.test.ts (about a minute in `npm test`) and
// `npm run fuzz -- --minutes N`: mutates valid inputs (ONNX models inline and with external data,
// a llama2.c checkpoint, tokenizer files), feeds each mutant to inspect / eval / quantize / import
// through the built CLI, and checks the contract of every run: exit 0, 1 or 2; a failure is one
// "w4a8: error:" line (no stack trace); no hang; no output left behind by a failed run; and every
// model quantize accepted loads in ONNX Runtime. Seeded: the seed is printed and replays the run.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toBinary, fromBinary, create } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation, type ModelProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { BIN } from './built_cli';
import { rng } from './onnx_fixtures';

export interface FuzzBase {
  /** A valid model file; its folder holds its side file (if any) and tok512.bin. */
  models: string[];
  /** A valid llama2.c checkpoint and its tokenizer. */
  checkpoint?: { bin: string; tokenizer: string };
  /** Tokenizer files (tok*.bin, tokenizer.json) to mutate and pass with --tokenizer. */
  tokenizers: string[];
  /** Evaluation text. */
  text: string;
}

export interface FuzzCase {
  id: number;
  mutation: string;
  command: string[];
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  problems: string[];
}

export interface FuzzReport {
  seed: number;
  runs: number;
  mutants: number;
  exitCodes: Record<string, number>;
  hangs: number;
  ortRefused: number;
  quantizeAccepted: number;
  failures: FuzzCase[];
  seconds: number;
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

// --- byte-level mutations ------------------------------------------------------------------

function flipBytes(bytes: Uint8Array, r: Rand): [Uint8Array, string] {
  const out = Uint8Array.from(bytes);
  const n = int(r, 1, 16);
  for (let i = 0; i < n; i++) out[int(r, 0, out.length - 1)] ^= 1 << int(r, 0, 7);
  return [out, `${n} bit flips`];
}

function truncate(bytes: Uint8Array, r: Rand): [Uint8Array, string] {
  const len = r() < 0.2 ? int(r, 0, 16) : int(r, 0, bytes.length - 1);
  return [bytes.subarray(0, len), `truncated to ${len} of ${bytes.length} bytes`];
}

function overwriteRun(bytes: Uint8Array, r: Rand): [Uint8Array, string] {
  const out = Uint8Array.from(bytes);
  const at = int(r, 0, out.length - 1);
  const len = Math.min(out.length - at, int(r, 1, 64));
  const v = pick(r, [0x00, 0xff, 0x7f, 0x80]);
  out.fill(v, at, at + len);
  return [out, `${len} bytes at ${at} set to 0x${v.toString(16)}`];
}

function byteMutation(bytes: Uint8Array, r: Rand): [Uint8Array, string] {
  const m = pick(r, [flipBytes, truncate, overwriteRun]);
  return m(bytes, r);
}

// --- protobuf field edits ------------------------------------------------------------------

const HUGE_DIMS = [-1n, -7n, 0n, 1n << 31n, 1n << 40n, (1n << 62n) + 3n];
const HUGE_COUNTS = ['18446744073709551615', '9007199254740993', '4294967296', '-1', '1e9', 'abc', '0'];
const LOCATIONS = ['../outside.bin', '/etc/passwd', 'sub/../../x', 'missing.bin', '', '.', 'dir/', 'a\0b', '..\\win.bin'];

function protoMutation(proto: ModelProto, r: Rand): string {
  const g = proto.graph!;
  const inits = g.initializer;
  const nodes = g.node;
  const kinds = [
    () => {
      const n = pick(r, nodes);
      const i = int(r, 0, Math.max(0, n.input.length - 1));
      n.input[i] = pick(r, ['undefined_value', '', n.output[0] ?? 'x', g.output[0]?.name ?? 'y']);
      return `node ${n.name || n.opType} input ${i} renamed to "${n.input[i]}"`;
    },
    () => {
      const t = pick(r, inits);
      const d = pick(r, HUGE_DIMS);
      if (t.dims.length === 0) t.dims.push(d);
      else t.dims[int(r, 0, t.dims.length - 1)] = d;
      return `initializer ${t.name} dims [${t.dims.join(', ')}]`;
    },
    () => {
      const t = pick(r, inits);
      t.dataType = pick(r, [0, 2, 3, 7, 8, 10, 16, 21, 22, 23, 999]);
      return `initializer ${t.name} data type ${t.dataType}`;
    },
    () => {
      const t = pick(r, inits);
      if (t.rawData.length > 0) t.rawData = t.rawData.subarray(0, int(r, 0, t.rawData.length - 1));
      else t.floatData = t.floatData.slice(0, int(r, 0, Math.max(0, t.floatData.length - 1)));
      return `initializer ${t.name} data shortened`;
    },
    () => {
      const i = int(r, 0, inits.length - 1);
      const [t] = inits.splice(i, 1);
      return `initializer ${t.name} removed`;
    },
    () => {
      nodes.reverse();
      return 'nodes in reverse order';
    },
    () => {
      const n = pick(r, nodes);
      n.output[0] = pick(r, nodes).output[0] ?? 'dup';
      return `node ${n.name || n.opType} output duplicated`;
    },
    () => {
      const n = pick(r, nodes);
      n.opType = pick(r, ['NoSuchOp', 'MatMulNBits', 'Conv', 'Gemm', '']);
      n.domain = pick(r, ['', 'com.microsoft', 'com.w4a8', 'ai.unknown']);
      return `node ${n.name} is now ${n.domain}:${n.opType}`;
    },
    () => {
      proto.opsetImport[0].version = BigInt(pick(r, [0, 1, 6, 9, 25, 1000]));
      return `default opset ${proto.opsetImport[0].version}`;
    },
    () => {
      g.output[0].name = pick(r, ['nothing', g.input[0]?.name ?? 'x']);
      return `graph output renamed to ${g.output[0].name}`;
    },
    () => {
      const t = pick(r, inits);
      const location = r() < 0.5 ? pick(r, LOCATIONS) : path.basename(t.externalData.find((e) => e.key === 'location')?.value ?? 'model.onnx_data');
      t.dataLocation = TensorProto_DataLocation.EXTERNAL;
      t.rawData = new Uint8Array(0);
      t.floatData = [];
      t.externalData = [
        create(StringStringEntryProtoSchema, { key: 'location', value: location }),
        create(StringStringEntryProtoSchema, { key: 'offset', value: pick(r, HUGE_COUNTS) }),
        create(StringStringEntryProtoSchema, { key: 'length', value: pick(r, HUGE_COUNTS) }),
      ];
      return `initializer ${t.name} external at "${location}" offset/length ${t.externalData[1].value}/${t.externalData[2].value}`;
    },
    () => {
      proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: pick(r, ['w4a8.ort_session_config.session.load_model_format', 'w4a8.ort_session_config.qdq_matmulnbits_accuracy_level', 'max_sequence_length']), value: pick(r, ['0', '9', '-1', 'ORT', '99999999999']) }));
      return `metadata ${proto.metadataProps[proto.metadataProps.length - 1].key}=${proto.metadataProps[proto.metadataProps.length - 1].value}`;
    },
    () => {
      const t = pick(r, inits);
      if (t.rawData.length >= 4) {
        const v = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
        const bad = pick(r, [NaN, Infinity, -Infinity, 3e38]);
        const at = 4 * int(r, 0, t.rawData.length / 4 - 1);
        const copy = Uint8Array.from(t.rawData);
        new DataView(copy.buffer).setFloat32(at, bad, true);
        void v;
        t.rawData = copy;
        return `initializer ${t.name} value at byte ${at} = ${bad}`;
      }
      return 'no-op (no raw data)';
    },
  ];
  const n = r() < 0.75 ? 1 : 2;
  const what: string[] = [];
  for (let i = 0; i < n; i++) what.push(pick(r, kinds)());
  return what.join('; ');
}

// --- running and judging -------------------------------------------------------------------

interface Run {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function cli(args: string[], timeoutMs: number): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '0' }, timeout: timeoutMs, maxBuffer: 1 << 26, killSignal: 'SIGKILL' });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut };
}

function judge(run: Run): string[] {
  const problems: string[] = [];
  if (run.timedOut) return ['hang (timeout)'];
  if (run.signal) problems.push(`killed by ${run.signal}`);
  if (run.status === null || ![0, 1, 2].includes(run.status)) problems.push(`exit ${run.status}`);
  if (/^\s+at .+:\d+:\d+\)?$/m.test(run.stderr)) problems.push('stack trace on stderr');
  if (/Segmentation|Aborted|core dumped|FATAL ERROR|terminate called/.test(run.stderr)) problems.push('crash text on stderr');
  if (run.status !== 0) {
    const lines = run.stderr.split('\n').filter((l) => l.trim() !== '' && !/^(w4a8: )?warning:/.test(l));
    if (lines.length !== 1 || !lines[0].startsWith('w4a8')) problems.push(`failure is not one line: ${JSON.stringify(run.stderr.slice(0, 400))}`);
  }
  return problems;
}

/** Files under dir (relative), hidden staging included. */
function listing(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(rel, e.name);
      if (e.isDirectory()) walk(path.join(d, e.name), p);
      else out.push(p);
    }
  };
  walk(dir, '');
  return out.sort();
}

async function ortLoads(model: string): Promise<string | undefined> {
  try {
    const s = await ort.InferenceSession.create(model, { logSeverityLevel: 4, extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } });
    await s.release();
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

function writeModelMutant(base: string, dir: string, r: Rand): string {
  fs.mkdirSync(dir, { recursive: true });
  const baseDir = path.dirname(base);
  for (const f of fs.readdirSync(baseDir)) if (f !== path.basename(base)) fs.copyFileSync(path.join(baseDir, f), path.join(dir, f));
  const bytes = fs.readFileSync(base);
  const target = path.join(dir, 'model.onnx');
  const sideFile = fs.readdirSync(dir).find((f) => f.endsWith('.onnx_data'));
  const roll = r();
  if (roll < 0.55) {
    const proto = fromBinary(ModelProtoSchema, bytes);
    const what = protoMutation(proto, r);
    fs.writeFileSync(target, toBinary(ModelProtoSchema, proto));
    return `proto edit: ${what}`;
  }
  if (roll < 0.75 && sideFile) {
    fs.writeFileSync(target, bytes);
    const side = path.join(dir, sideFile);
    const [m, what] = byteMutation(fs.readFileSync(side), r);
    fs.writeFileSync(side, m);
    return `side file ${sideFile}: ${what}`;
  }
  const [m, what] = byteMutation(bytes, r);
  fs.writeFileSync(target, m);
  return `model bytes: ${what}`;
}

export interface FuzzOptions {
  seed: number;
  seconds: number;
  /** Stop after this many mutants as well (a fixed count makes a seed's run the same on any machine). */
  maxMutants?: number;
  workDir: string;
  /** Per-run limit; a run past it is a hang. */
  runTimeoutMs?: number;
  log?: (line: string) => void;
}

export async function fuzzCli(base: FuzzBase, opts: FuzzOptions): Promise<FuzzReport> {
  const r = rng(opts.seed);
  const runTimeout = opts.runTimeoutMs ?? 60_000;
  const started = Date.now();
  const report: FuzzReport = { seed: opts.seed, runs: 0, mutants: 0, exitCodes: {}, hangs: 0, ortRefused: 0, quantizeAccepted: 0, failures: [], seconds: 0 };
  let id = 0;
  const record = (mutation: string, command: string[], run: Run, extra: string[] = []): void => {
    report.runs++;
    const key = run.timedOut ? 'hang' : run.signal ? run.signal : String(run.status);
    report.exitCodes[key] = (report.exitCodes[key] ?? 0) + 1;
    if (run.timedOut) report.hangs++;
    const problems = [...judge(run), ...extra];
    if (problems.length > 0) {
      const c: FuzzCase = { id, mutation, command, status: run.status, signal: run.signal, timedOut: run.timedOut, problems };
      report.failures.push(c);
      opts.log?.(`FAIL #${id} ${mutation} :: w4a8 ${command.join(' ')} :: ${problems.join('; ')}`);
    }
  };

  while ((Date.now() - started) / 1000 < opts.seconds && report.mutants < (opts.maxMutants ?? Infinity)) {
    id++;
    report.mutants++;
    const dir = path.join(opts.workDir, `m${id}`);
    const kind = r();
    if (kind < 0.7 || (!base.checkpoint && kind < 0.9)) {
      const model = writeModelMutant(pick(r, base.models), dir, r);
      const file = path.join(dir, 'model.onnx');
      const commands: string[][] = [
        ['inspect', file],
        ['eval', file, '--text', base.text, '--max-tokens', '64', '--ctx', '32', '--quiet'],
      ];
      const outDir = path.join(dir, 'out');
      const format = pick(r, ['matmulnbits', 'qdq', 'sim']);
      const quantize = ['quantize', file, '-o', path.join(outDir, 'q.onnx'), '--method', 'rtn', '--format', format, '--aformat', format === 'qdq' ? 'none' : pick(r, ['int8', 'none']), '--quiet'];
      commands.push(quantize);
      for (const command of commands) {
        const before = listing(dir);
        const run = cli(command, runTimeout);
        const extra: string[] = [];
        if (command[0] === 'quantize') {
          if (run.status === 0) {
            report.quantizeAccepted++;
            const refused = await ortLoads(path.join(outDir, 'q.onnx'));
            if (refused) {
              report.ortRefused++;
              extra.push(`quantize wrote a model ORT refuses: ${refused}`);
            }
          } else if (listing(outDir).length > 0) {
            extra.push(`failed quantize left ${listing(outDir).join(', ')}`);
          }
        } else if (listing(dir).join('\n') !== before.join('\n')) {
          extra.push(`${command[0]} changed the input folder`);
        }
        record(model, command, run, extra);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    } else if (kind < 0.9 && base.checkpoint) {
      fs.mkdirSync(dir, { recursive: true });
      const [m, what] = byteMutation(fs.readFileSync(base.checkpoint.bin), r);
      const bin = path.join(dir, 'ckpt.bin');
      fs.writeFileSync(bin, m);
      let tok = base.checkpoint.tokenizer;
      let mutation = `llama2.c checkpoint: ${what}`;
      if (r() < 0.3) {
        const [t, tw] = byteMutation(fs.readFileSync(tok), r);
        tok = path.join(dir, 'tok.bin');
        fs.writeFileSync(tok, t);
        mutation += `; tokenizer: ${tw}`;
      }
      const out = path.join(dir, 'out');
      const command = ['import', 'llama2c', bin, '--tokenizer', tok, '-o', out, '--quiet'];
      const run = cli(command, runTimeout);
      const extra: string[] = [];
      if (run.status !== 0 && listing(out).length > 0) extra.push(`failed import left ${listing(out).join(', ')}`);
      if (run.status === 0) {
        const refused = await ortLoads(path.join(out, 'model.onnx'));
        if (refused) extra.push(`import wrote a model ORT refuses: ${refused}`);
      }
      record(mutation, command, run, extra);
      fs.rmSync(dir, { recursive: true, force: true });
    } else {
      fs.mkdirSync(dir, { recursive: true });
      const source = pick(r, base.tokenizers);
      const [m, what] = byteMutation(fs.readFileSync(source), r);
      const tok = path.join(dir, path.basename(source));
      fs.writeFileSync(tok, m);
      const command = ['eval', base.models[0], '--text', base.text, '--tokenizer', tok, '--max-tokens', '64', '--ctx', '32', '--quiet'];
      record(`tokenizer ${path.basename(source)}: ${what}`, command, cli(command, runTimeout));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

export function summarize(report: FuzzReport): string {
  const codes = Object.entries(report.exitCodes).map(([k, v]) => `${k} x${v}`).join(', ');
  return (
    `fuzz seed ${report.seed} (W4A8_FUZZ_SEED=${report.seed} replays it): ${report.mutants} mutants, ${report.runs} runs in ${report.seconds.toFixed(0)} s; ` +
    `exit codes: ${codes}; hangs ${report.hangs}; quantize accepted ${report.quantizeAccepted}, ORT refused ${report.ortRefused}; contract failures ${report.failures.length}`
  );
}
