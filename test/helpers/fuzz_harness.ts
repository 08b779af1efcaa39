// The CLI fuzzer behind test/integration/fuzz_cli.test.ts (about a minute in `npm test`) and
// `npm run fuzz -- --minutes N`: mutates valid inputs (ONNX models inline and with external data,
// a llama2.c checkpoint, tokenizer files), feeds each mutant to inspect / eval / quantize / import
// through the built CLI, and checks the contract of every run: exit 0, 1 or 2; a failure is one
// "w4a8: error:" line (no stack trace); no hang; no output left behind by a failed run; and every
// model quantize accepted loads in ONNX Runtime. Besides mutated bytes it tries the hostile
// situations of a shared machine: special files (FIFO, /dev/zero, a folder) as any input or as -o,
// two quantize runs on one -o at once (the second is refused naming the first's pid, or runs after
// it), SIGINT/SIGTERM/SIGHUP at random points (exit 130/143/129, nothing staged left, no output
// half-written) and non-finite weights (quantize refuses naming the tensor; eval names the window).
// Seeded: the seed is printed and replays the run.
import { spawn, spawnSync } from 'node:child_process';
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

const CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

/** Starts the CLI without waiting; `signals` are sent after `delayMs` (then 0-100 ms apart). */
function cliAsync(args: string[], timeoutMs: number, signals: { names: NodeJS.Signals[]; delayMs: number; r: Rand } | undefined = undefined): { pid: number; done: Promise<Run> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', W4A8_DEBUG: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += String(d)));
  child.stderr!.on('data', (d) => (stderr += String(d)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  if (signals) {
    let at = signals.delayMs;
    for (const sig of signals.names) {
      setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill(sig), at);
      at += Math.floor(signals.r() * 100);
    }
  }
  const done = new Promise<Run>((resolve) =>
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, timedOut });
    }),
  );
  return { pid: child.pid ?? -1, done };
}

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p} failed: ${r.stderr}`);
}

/** A run stopped by the signal the harness sent: its exit code, or death by it before the CLI's handlers exist. */
export interface SignalSent {
  signal: NodeJS.Signals;
}

function judge(run: Run, sent?: SignalSent): string[] {
  const problems: string[] = [];
  if (run.timedOut) return ['hang (timeout)'];
  if (sent && (run.signal === sent.signal || run.status === CODES[sent.signal])) {
    // Stopped: a notice line, then the one error line (checked by the caller); no crash text.
    if (/^\s+at .+:\d+:\d+\)?$/m.test(run.stderr)) problems.push('stack trace on stderr');
    return problems;
  }
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

type Record_ = (mutation: string, command: string[], run: Run, extra?: string[], sent?: SignalSent) => void;
type Situation = (base: FuzzBase, dir: string, r: Rand, timeoutMs: number, record: Record_, report: FuzzReport) => Promise<void>;

/** A copy of a base model (and its side file, tokenizer) in `dir`; returns the model path. */
function copyBase(model: string, dir: string): string {
  for (const f of fs.readdirSync(path.dirname(model))) fs.copyFileSync(path.join(path.dirname(model), f), path.join(dir, f));
  return path.join(dir, path.basename(model));
}

const quantizeArgs = (model: string, out: string, extra: string[] = []): string[] => ['quantize', model, '-o', out, '--method', 'rtn', '--format', 'matmulnbits', '--quiet', ...extra];

/** The output folder holds the whole set (a model ORT loads) or nothing, and nothing hidden. */
async function wholeOrNothing(outDir: string, model: string, finished: boolean, report: FuzzReport): Promise<string[]> {
  const names = listing(outDir);
  const problems: string[] = [];
  const hidden = names.filter((n) => n.split(path.sep).some((part) => part.startsWith('.')));
  if (hidden.length > 0) problems.push(`left staged files or a lock: ${hidden.join(', ')}`);
  if (!finished) {
    if (names.length > 0) problems.push(`a stopped or failed run left ${names.join(', ')}`);
  } else if (!names.includes(path.basename(model))) {
    problems.push(`exit 0 but no ${path.basename(model)}`);
  } else {
    report.quantizeAccepted++;
    const refused = await ortLoads(path.join(outDir, path.basename(model)));
    if (refused) {
      report.ortRefused++;
      problems.push(`the output does not load in ORT: ${refused}`);
    }
  }
  return problems;
}

/** A FIFO, /dev/zero or a folder where a regular file belongs: refused with one line, never read or replaced. */
const specialFiles: Situation = async (base, dir, r, timeoutMs, record) => {
  const fifo = path.join(dir, 'fifo');
  mkfifo(fifo);
  const special = pick(r, [fifo, '/dev/zero']);
  const model = copyBase(pick(r, base.models), dir);
  const out = path.join(dir, 'out', 'q.onnx');
  const cases: [string, string[]][] = [
    ['model', ['inspect', special]],
    ['model', ['eval', special, '--text', base.text, '--max-tokens', '64', '--ctx', '32', '--quiet']],
    ['model', quantizeArgs(special, out)],
    ['tokenizer', ['eval', model, '--text', base.text, '--tokenizer', special, '--max-tokens', '64', '--ctx', '32', '--quiet']],
    ['evaluation text', ['eval', model, '--text', special, '--max-tokens', '64', '--ctx', '32', '--quiet']],
    ['calibration text', quantizeArgs(model, out, ['--calib', special])],
    ['-o', quantizeArgs(model, special)],
    ['-o (a folder)', quantizeArgs(model, dir)],
  ];
  const side = fs.readdirSync(dir).find((f) => f.endsWith('.onnx_data'));
  if (side) {
    // The side file replaced by a special file (a symlink for /dev/zero: the open follows it).
    const sideCase: [string, string[]] = [`side file ${side}`, pick(r, [['eval', model, '--text', base.text, '--max-tokens', '64', '--ctx', '32', '--quiet'], quantizeArgs(model, out)])];
    cases.push(sideCase);
  }
  const [what, command] = pick(r, cases);
  if (what.startsWith('side file')) {
    fs.rmSync(path.join(dir, side!));
    if (special === fifo) fs.renameSync(fifo, path.join(dir, side!));
    else fs.symlinkSync('/dev/zero', path.join(dir, side!));
  }
  const run = cli(command, timeoutMs);
  const extra: string[] = [];
  if (run.status === 0) extra.push(`${special} as the ${what} was accepted`);
  for (const f of [fifo, ...(side ? [path.join(dir, side)] : [])]) {
    const st = fs.existsSync(f) ? fs.lstatSync(f) : undefined;
    if (st && !st.isFIFO() && !st.isFile() && !st.isSymbolicLink()) extra.push(`${f} changed kind`);
  }
  if (fs.existsSync(fifo) && !fs.lstatSync(fifo).isFIFO()) extra.push('the FIFO was replaced');
  if (!fs.lstatSync('/dev/zero').isCharacterDevice()) extra.push('/dev/zero was replaced');
  if (listing(path.join(dir, 'out')).length > 0) extra.push(`a refused run left ${listing(path.join(dir, 'out')).join(', ')}`);
  record(`special file: ${special} as the ${what}`, command, run, extra);
};

/** Two quantize runs on one -o at once: the second is refused naming the first's pid, or runs after it. */
const concurrentWriters: Situation = async (base, dir, r, timeoutMs, record, report) => {
  const model = copyBase(pick(r, base.models), dir);
  const out = path.join(dir, 'out', 'q.onnx');
  const command = quantizeArgs(model, out);
  const a = cliAsync(command, timeoutMs);
  const b = cliAsync(command, timeoutMs);
  const runs = await Promise.all([a.done, b.done]);
  const pids = [a.pid, b.pid];
  const problems = await wholeOrNothing(path.dirname(out), out, runs.some((x) => x.status === 0), report);
  runs.forEach((run, i) => {
    const extra: string[] = i === 0 ? [...problems] : [];
    if (run.status !== 0 && !run.timedOut) {
      const other = pids[1 - i];
      if (!run.stderr.includes(`another w4a8 run (pid ${other}) is writing`) && !/another w4a8 run is starting to write/.test(run.stderr)) extra.push(`refused without naming the other run (pid ${other}): ${run.stderr.trim()}`);
    }
    record('two quantize runs on one -o at once', command, run, extra);
  });
  if (runs.every((x) => x.status !== 0)) record('two quantize runs on one -o at once', command, runs[0], ['neither run wrote the output']);
};

/** A stop signal (once or twice) at a random point of a quantize or eval run. */
const signalsAtRandom: Situation = async (base, dir, r, timeoutMs, record, report) => {
  const model = copyBase(pick(r, base.models), dir);
  const out = path.join(dir, 'out', 'q.onnx');
  const sig = pick(r, ['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]);
  const twice = r() < 0.25;
  const delayMs = Math.floor(r() * 1500);
  const command = r() < 0.75 ? quantizeArgs(model, out) : ['eval', model, '--text', base.text, '--max-tokens', '256', '--ctx', '32', '--quiet'];
  const run = await cliAsync(command, timeoutMs, { names: twice ? [sig, sig] : [sig], delayMs, r }).done;
  const mutation = `${sig}${twice ? ' twice' : ''} after ${delayMs} ms`;
  const extra: string[] = [];
  // Killed by the signal itself: while Node starts, before the CLI installs its handlers (a shell
  // reports 128+n then too; nothing can be staged yet), or while Node tears the process down after
  // the command finished (the handlers are gone by then; its output is already committed whole).
  const stopped = run.status === CODES[sig] || run.signal === sig;
  if (!run.timedOut && run.status !== 0 && !stopped) extra.push(`exit ${run.status ?? run.signal} after ${sig}, not ${CODES[sig]}`);
  if (run.status === CODES[sig]) {
    const lines = run.stderr.trim().split('\n');
    if (!/^w4a8: error: (interrupted|stopped by)/.test(lines[lines.length - 1] ?? '')) extra.push(`the last stderr line does not say it was stopped: ${JSON.stringify(run.stderr.slice(-300))}`);
  }
  // A run killed by the signal with its model in place finished first: the whole set must be there and load.
  const finished = run.status === 0 || (run.signal === sig && fs.existsSync(out));
  if (command[0] === 'quantize') extra.push(...(await wholeOrNothing(path.dirname(out), out, finished, report)));
  record(`signal: ${mutation}`, command, run, extra, { signal: sig });
};

/**
 * NaN or an infinity in a MatMul weight. quantize refuses a weight it quantizes, naming the
 * tensor (a scale of a group holding one is undefined); a weight it keeps in float (the logits
 * layer) is copied as it is. eval stops naming the window when the loss is not finite, and may
 * finish when the model absorbs the value (tanh(inf) = 1).
 */
const nonFiniteWeights: Situation = async (base, dir, r, timeoutMs, record, report) => {
  const source = base.models.find((m) => !fs.readdirSync(path.dirname(m)).some((f) => f.endsWith('.onnx_data'))) ?? base.models[0];
  const model = copyBase(source, dir);
  const proto = fromBinary(ModelProtoSchema, fs.readFileSync(model));
  const g = proto.graph!;
  const matmuls = g.node.filter((n) => n.opType === 'MatMul' && g.initializer.some((t) => t.name === n.input[1] && t.rawData.length >= 4 && t.dataType === 1));
  if (matmuls.length === 0) return;
  const node = pick(r, matmuls);
  const t = g.initializer.find((x) => x.name === node.input[1])!;
  const keptInFloat = g.output.some((o) => o.name === node.output[0]);
  const bad = pick(r, [NaN, Infinity, -Infinity]);
  const at = 4 * int(r, 0, t.rawData.length / 4 - 1);
  const copy = Uint8Array.from(t.rawData);
  new DataView(copy.buffer).setFloat32(at, bad, true);
  t.rawData = copy;
  fs.writeFileSync(model, toBinary(ModelProtoSchema, proto));
  const mutation = `non-finite weight: ${t.name}[${at / 4}] = ${bad}`;
  const out = path.join(dir, 'out', 'q.onnx');
  const q = cli(quantizeArgs(model, out), timeoutMs);
  const qExtra: string[] = [];
  if (!keptInFloat && (q.status !== 1 || !q.stderr.includes(`"${t.name}"`))) qExtra.push(`quantize did not refuse naming "${t.name}" (exit ${q.status})`);
  qExtra.push(...(await wholeOrNothing(path.dirname(out), out, q.status === 0, report)));
  record(mutation, quantizeArgs(model, out), q, qExtra);
  const evalArgs = ['eval', model, '--text', base.text, '--max-tokens', '64', '--ctx', '32', '--quiet'];
  const e = cli(evalArgs, timeoutMs);
  const eExtra: string[] = [];
  const finished = e.status === 0 && /^ppl \d+(\.\d+)? /m.test(e.stdout);
  if (!finished && (e.status !== 1 || !/non-finite .* in window \d+/.test(e.stderr))) eExtra.push(`eval neither finished with a finite perplexity nor stopped naming the window (exit ${e.status}: ${e.stderr.trim().slice(0, 200)})`);
  record(mutation, evalArgs, e, eExtra);
};

const SITUATIONS: Situation[] = [specialFiles, concurrentWriters, signalsAtRandom, nonFiniteWeights];

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
  const record = (mutation: string, command: string[], run: Run, extra: string[] = [], sent?: SignalSent): void => {
    report.runs++;
    const key = run.timedOut ? 'hang' : run.signal ? `killed by ${run.signal}` : String(run.status);
    report.exitCodes[key] = (report.exitCodes[key] ?? 0) + 1;
    if (run.timedOut) report.hangs++;
    const problems = [...judge(run, sent), ...extra];
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
    // Every fifth mutant is one of the shared-machine situations, in turn, so that a short run has each.
    if (id % 5 === 0) {
      fs.mkdirSync(dir, { recursive: true });
      await SITUATIONS[(id / 5) % SITUATIONS.length](base, dir, r, runTimeout, record, report);
      fs.rmSync(dir, { recursive: true, force: true });
    } else if (kind < 0.7 || (!base.checkpoint && kind < 0.9)) {
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
