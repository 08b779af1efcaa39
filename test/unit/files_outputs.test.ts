// Files: inputs must be regular files (checked on the opened descriptor), files a model refers
// to must lie inside its folder by real path, and output sets appear whole or not at all (a
// failure injected at every file-system step leaves the previous set as it was), one writer at
// a time (a pid lock), stale staging of dead processes removed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType } from '../../lib/onnx/dtype';
import { loadModel, modelFromBytes, saveModel, saveModelAsync, serializeForOrt } from '../../lib/onnx/model';
import { CancelToken, runAbortCleanups } from '../../lib/util/cancel';
import { CancelledError } from '../../lib/util/errors';
import { tensorRawBytes } from '../../lib/onnx/tensor';
import { loadTokenizer, findTokenizerBeside } from '../../lib/tokenize/load';
import { readText } from '../../lib/tokenize/documents';
import { OutputSet, checkOutputPath, ensureOutputFolder, outputFaults } from '../../lib/util/output_set';
import { writeFileAtomic } from '../../lib/util/atomic_write';
import { UsageError, W4A8Error } from '../../lib/util/errors';
import { tempDir, tinyMlp } from '../helpers/onnx_fixtures';

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p} failed: ${r.stderr}`);
}

/** A pid that no longer exists: a child that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** Every entry of a folder with its bytes (links as "->target"), hidden ones included. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, n);
    const st = fs.lstatSync(p);
    out[n] = st.isSymbolicLink() ? `->${fs.readlinkSync(p)}` : st.isFile() ? fs.readFileSync(p).toString('base64') : `<${st.isDirectory() ? 'dir' : 'special'}>`;
  }
  return out;
}

/** A model with external data in m.onnx_data, the tokenizer and a report: one output set. */
function writeSet(dir: string, seed: number, opts: { fail?: string } = {}): void {
  const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, seed);
  outputFaults.hook = (step) => {
    if (step === opts.fail) throw new Error(`injected failure at ${step}`);
  };
  let out: OutputSet | undefined;
  try {
    out = new OutputSet(path.join(dir, 'm.onnx'));
    saveModel(model, path.join(dir, 'm.onnx'), { externalData: 'always', into: out });
    fs.writeFileSync(out.staged(out.add(path.join(dir, 'tokenizer.json'))), `{"seed": ${seed}}`);
    fs.writeFileSync(out.staged(out.add(path.join(dir, 'm.onnx.report.json'))), `{"run": ${seed}}`);
    out.commit();
  } finally {
    outputFaults.hook = undefined;
    out?.abort();
  }
}

describe('inputs must be regular files (fstat of the opened descriptor)', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('regular');
    mkfifo(path.join(dir, 'fifo'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses a FIFO and /dev/zero as the model, the tokenizer and the text, before reading (no hang)', () => {
    const fifo = path.join(dir, 'fifo');
    expect(() => loadModel(fifo)).toThrow(new W4A8Error(`model ${fifo} is a FIFO (named pipe), not a regular file; give a regular file`));
    expect(() => loadModel('/dev/zero')).toThrow(/\/dev\/zero is a character device, not a regular file/);
    expect(() => loadTokenizer(fifo)).toThrow(/tokenizer .*fifo is a FIFO/);
    expect(() => loadTokenizer('/dev/zero')).toThrow(/character device/);
    expect(() => readText(fifo)).toThrow(/text file .*fifo is a FIFO/);
    expect(() => loadModel(dir)).toThrow(/is a folder/);
  });

  it('refuses a side file that is a FIFO or /dev/zero (through a link) with one line naming the tensor', () => {
    const sub = path.join(dir, 'side');
    fs.mkdirSync(sub);
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 3);
    saveModel(model, path.join(sub, 'm.onnx'), { externalData: 'always' });
    fs.rmSync(path.join(sub, 'm.onnx_data'));
    mkfifo(path.join(sub, 'm.onnx_data'));
    // Refused when the model is loaded (its ranges are checked against the side file's size) ...
    expect(() => loadModel(path.join(sub, 'm.onnx'))).toThrow(/external data file \(for tensor "w1"\) .*m\.onnx_data is a FIFO/);
    // ... and by every reader of the bytes.
    const m = modelFromBytes(fs.readFileSync(path.join(sub, 'm.onnx')), sub);
    const w1 = m.proto.graph!.initializer.find((t) => t.name === 'w1')!;
    expect(() => tensorRawBytes(m, w1)).toThrow(/external data file \(for tensor "w1"\) .*m\.onnx_data is a FIFO/);
    expect(() => serializeForOrt(m)).toThrow(/is a FIFO/);
  });
});

describe('containment by real path', () => {
  let root: string;
  let outside: string;
  let modelDir: string;
  let sideBytes: Buffer;
  beforeAll(() => {
    root = tempDir('contain');
    outside = path.join(root, 'outside');
    modelDir = path.join(root, 'model');
    fs.mkdirSync(outside);
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 5);
    saveModel(model, path.join(modelDir, 'm.onnx'), { externalData: 'always' });
    sideBytes = fs.readFileSync(path.join(modelDir, 'm.onnx_data'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const w1Bytes = () => {
    const m = loadModel(path.join(modelDir, 'm.onnx'));
    return tensorRawBytes(m, m.proto.graph!.initializer.find((t) => t.name === 'w1')!);
  };
  const placeSide = (how: 'copy' | 'symlink-file' | 'symlink-folder' | 'hardlink' | 'symlink-inside') => {
    const side = path.join(modelDir, 'm.onnx_data');
    fs.rmSync(side, { force: true });
    fs.rmSync(path.join(modelDir, 'real'), { recursive: true, force: true });
    fs.writeFileSync(path.join(outside, 'w.bin'), sideBytes);
    if (how === 'copy') fs.writeFileSync(side, sideBytes);
    if (how === 'symlink-file') fs.symlinkSync(path.join(outside, 'w.bin'), side);
    if (how === 'hardlink') fs.linkSync(path.join(outside, 'w.bin'), side);
    if (how === 'symlink-folder') {
      // m.onnx_data is inside a folder link: the location names a file in the model's folder
      // lexically, but the real path is outside.
      fs.symlinkSync(outside, path.join(modelDir, 'real'));
      fs.symlinkSync(path.join('real', 'w.bin'), side);
    }
    if (how === 'symlink-inside') {
      fs.mkdirSync(path.join(modelDir, 'real'));
      fs.writeFileSync(path.join(modelDir, 'real', 'w.bin'), sideBytes);
      fs.symlinkSync(path.join('real', 'w.bin'), side);
    }
  };

  it('reads a side file that is a plain copy, a hard link (to a file elsewhere) or a link inside the folder', () => {
    placeSide('copy');
    const expected = Buffer.from(w1Bytes());
    for (const how of ['hardlink', 'symlink-inside'] as const) {
      placeSide(how);
      expect(Buffer.from(w1Bytes()).equals(expected)).toBe(true);
    }
  });

  it('refuses a side file linked to a file outside, or reached through a link to a folder outside', () => {
    for (const how of ['symlink-file', 'symlink-folder'] as const) {
      placeSide(how);
      expect(() => w1Bytes()).toThrow(/resolves to .*outside.*w\.bin, outside the model's folder|resolves to .*outside the model's folder/);
      const m = modelFromBytes(fs.readFileSync(path.join(modelDir, 'm.onnx')), modelDir); // loadModel refuses it already
      expect(() => serializeForOrt(m)).toThrow(/outside the model's folder/);
    }
    placeSide('copy');
  });

  it('refuses a tokenizer (and tokenizer_config.json) beside the model that links outside; a hard link is inside', () => {
    fs.writeFileSync(path.join(outside, 'tokenizer.json'), '{}');
    const tok = path.join(modelDir, 'tokenizer.json');
    fs.symlinkSync(path.join(outside, 'tokenizer.json'), tok);
    expect(() => findTokenizerBeside(path.join(modelDir, 'm.onnx'))).toThrow(/resolves outside the model's folder/);
    fs.rmSync(tok);
    fs.linkSync(path.join(outside, 'tokenizer.json'), tok);
    expect(findTokenizerBeside(path.join(modelDir, 'm.onnx'))).toBe(tok);
    fs.symlinkSync(path.join(outside, 'tokenizer.json'), path.join(modelDir, 'tokenizer_config.json'));
    expect(() => loadTokenizer(tok)).toThrow(/tokenizer_config\.json resolves outside its folder/);
    fs.rmSync(tok);
    fs.rmSync(path.join(modelDir, 'tokenizer_config.json'));
  });
});

describe('output paths', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('outpath');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates missing output folders (mkdir -p) and refuses a path through a file', () => {
    expect(ensureOutputFolder(path.join(dir, 'a', 'b', 'c', 'm.onnx'))).toBe(path.join(dir, 'a', 'b', 'c'));
    expect(fs.statSync(path.join(dir, 'a', 'b', 'c')).isDirectory()).toBe(true);
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    expect(() => ensureOutputFolder(path.join(dir, 'file', 'sub', 'm.onnx'))).toThrow(UsageError);
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('x');
  });

  it('refuses a folder, a FIFO and a device as an output, and never renames over them', () => {
    mkfifo(path.join(dir, 'fifo'));
    expect(() => checkOutputPath(dir)).toThrow(/is a folder; give a file path/);
    expect(() => checkOutputPath(path.join(dir, 'fifo'))).toThrow(/is a FIFO \(named pipe\); outputs replace only regular files/);
    expect(() => checkOutputPath('/dev/null')).toThrow(/is a character device/);
    expect(() => writeFileAtomic(path.join(dir, 'fifo'), 'x')).toThrow(UsageError);
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 1);
    expect(() => saveModel(model, path.join(dir, 'fifo'))).toThrow(UsageError);
    // A side file name that is taken by a FIFO is refused too, and nothing is written.
    mkfifo(path.join(dir, 's.onnx_data'));
    expect(() => saveModel(model, path.join(dir, 's.onnx'), { externalData: 'always' })).toThrow(/s\.onnx_data exists and is a FIFO/);
    expect(fs.existsSync(path.join(dir, 's.onnx'))).toBe(false);
    expect(fs.lstatSync(path.join(dir, 'fifo')).isFIFO()).toBe(true);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a symbolic link as the output is replaced by the new file; its target is never written', () => {
    const target = path.join(dir, 'target.onnx');
    fs.writeFileSync(target, 'untouched');
    fs.symlinkSync(target, path.join(dir, 'link.onnx'));
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 2);
    saveModel(model, path.join(dir, 'link.onnx'));
    expect(fs.lstatSync(path.join(dir, 'link.onnx')).isFile()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toBe('untouched');
    expect(loadModel(path.join(dir, 'link.onnx')).proto.graph!.node.length).toBe(3);
  });
});

describe('all-or-nothing output sets', () => {
  let steps: string[];
  beforeAll(() => {
    // The steps of one overwrite, recorded by the hook.
    const dir = tempDir('steps');
    writeSet(dir, 1);
    steps = [];
    outputFaults.hook = (s) => steps.push(s);
    try {
      const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 2);
      const out = new OutputSet(path.join(dir, 'm.onnx'));
      saveModel(model, path.join(dir, 'm.onnx'), { externalData: 'always', into: out });
      fs.writeFileSync(out.staged(out.add(path.join(dir, 'tokenizer.json'))), '{}');
      fs.writeFileSync(out.staged(out.add(path.join(dir, 'm.onnx.report.json'))), '{}');
      out.commit();
    } finally {
      outputFaults.hook = undefined;
    }
    fs.rmSync(dir, { recursive: true });
  });

  it('records every file-system step, the model moved aside first and renamed in last', () => {
    expect(steps).toEqual([
      'lock',
      'staging',
      'backup:m.onnx',
      'backup:m.onnx_data',
      'rename:m.onnx_data',
      'backup:tokenizer.json',
      'rename:tokenizer.json',
      'backup:m.onnx.report.json',
      'rename:m.onnx.report.json',
      'rename:m.onnx',
      'cleanup',
    ]);
  });

  it('a failure at any step before the last rename leaves the previous set byte for byte, or no set at all', () => {
    for (const fail of steps.filter((s) => s !== 'cleanup')) {
      for (const existing of [true, false]) {
        if (!existing && fail.startsWith('backup:')) continue; // nothing to move aside
        const dir = tempDir('fault');
        if (existing) writeSet(dir, 1);
        const before = snapshot(dir);
        expect(() => writeSet(dir, 2, { fail })).toThrow(`injected failure at ${fail}`);
        expect({ fail, existing, after: snapshot(dir) }).toEqual({ fail, existing, after: before });
        // The next run writes the new set.
        writeSet(dir, 2);
        expect(fs.readFileSync(path.join(dir, 'm.onnx.report.json'), 'utf8')).toBe('{"run": 2}');
        expect(Object.keys(snapshot(dir))).toEqual(['m.onnx', 'm.onnx.report.json', 'm.onnx_data', 'tokenizer.json']);
        fs.rmSync(dir, { recursive: true });
      }
    }
  });

  it('a failure while removing the staging folder after the swap leaves the new set complete', () => {
    const dir = tempDir('fault-cleanup');
    writeSet(dir, 1);
    expect(() => writeSet(dir, 2, { fail: 'cleanup' })).toThrow('injected failure at cleanup');
    expect(fs.readFileSync(path.join(dir, 'm.onnx.report.json'), 'utf8')).toBe('{"run": 2}');
    const m = loadModel(path.join(dir, 'm.onnx'));
    expect(tensorRawBytes(m, m.proto.graph!.initializer[0]).length).toBe(64 * 32 * 4);
    fs.rmSync(dir, { recursive: true });
  });

  it('one writer per output: a live pid in the lock refuses at once naming it; a dead one is taken over', () => {
    const dir = tempDir('lock');
    const lock = path.join(dir, '.m.onnx.w4a8-lock');
    const livePid = process.pid; // this jest worker: alive
    fs.writeFileSync(lock, `${livePid}\n`);
    expect(() => new OutputSet(path.join(dir, 'm.onnx'))).toThrow(`another w4a8 run (pid ${livePid}) is writing ${path.join(dir, 'm.onnx')}`);
    expect(fs.readdirSync(dir)).toEqual(['.m.onnx.w4a8-lock']);
    fs.writeFileSync(lock, `${deadPid()}\n`);
    writeSet(dir, 3);
    expect(fs.existsSync(lock)).toBe(false);
    fs.rmSync(dir, { recursive: true });
  });

  it('a lock with no pid yet (another run between creating and writing it) is not taken over; a lock that is not ours is never removed', () => {
    const dir = tempDir('lock-race');
    const lock = path.join(dir, '.m.onnx.w4a8-lock');
    // What a second run saw under the old create-then-write lock: an empty file, which read as
    // pid 0 (dead), so it removed the lock and both runs wrote the same output.
    fs.writeFileSync(lock, '');
    expect(() => new OutputSet(path.join(dir, 'm.onnx'))).toThrow(`another w4a8 run is starting to write ${path.join(dir, 'm.onnx')}`);
    expect(fs.readdirSync(dir)).toEqual(['.m.onnx.w4a8-lock']);
    fs.rmSync(lock);
    // Our lock is created complete (hard link of a file already holding the pid).
    const set = new OutputSet(path.join(dir, 'm.onnx'));
    expect(fs.readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    expect(fs.readdirSync(dir).sort()).toEqual(['.m.onnx.w4a8-lock', path.basename(set.stagingDir)].sort());
    // Someone else's lock in its place (e.g. taken over after ours was removed by hand): left alone.
    const other = deadPid();
    fs.writeFileSync(lock, `${other}\n`);
    set.abort();
    expect(fs.readFileSync(lock, 'utf8')).toBe(`${other}\n`);
    fs.rmSync(dir, { recursive: true });
  });

  it('a stale lock is taken over only under the break lock: a live breaker is waited for, a dead one is named for removal', () => {
    const dir = tempDir('lock-break');
    const out = path.join(dir, 'm.onnx');
    const lock = path.join(dir, '.m.onnx.w4a8-lock');
    const breakLock = `${lock}.break`;
    // A breaker that died mid-takeover: nothing is guessed, both files are named and left.
    fs.writeFileSync(lock, `${deadPid()}\n`);
    fs.writeFileSync(breakLock, `${deadPid()}\n`);
    expect(() => new OutputSet(out)).toThrow(`died while taking over the stale lock of ${out}; remove ${breakLock} and ${lock}`);
    expect(fs.readdirSync(dir).sort()).toEqual(['.m.onnx.w4a8-lock', '.m.onnx.w4a8-lock.break']);
    // A live breaker (this process stands in): the run waits, sees it still busy, and gives up
    // with the lock untouched rather than taking it from under the breaker.
    fs.writeFileSync(breakLock, `${process.pid}\n`);
    expect(() => new OutputSet(out)).toThrow(`cannot take the lock ${lock} for ${out}`);
    expect(fs.readdirSync(dir).sort()).toEqual(['.m.onnx.w4a8-lock', '.m.onnx.w4a8-lock.break']);
    // The breaker gone: the stale lock is taken over and the break lock is not left behind.
    fs.rmSync(breakLock);
    const set = new OutputSet(out);
    expect(fs.readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    set.abort();
    expect(fs.readdirSync(dir)).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });

  it('removes staging folders of dead processes; keeps those of live ones', () => {
    const dir = tempDir('stale');
    const dead = path.join(dir, `.m.onnx.w4a8-staging-${deadPid()}-x`);
    const live = path.join(dir, `.m.onnx.w4a8-staging-${process.pid}-old`);
    for (const d of [dead, live]) {
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'm.onnx_data'), 'partial');
    }
    writeSet(dir, 4);
    expect(fs.existsSync(dead)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });

  it('the write phase stops between tensors when cancelled (SIGTERM: exit 143), leaving the previous set', async () => {
    const dir = tempDir('cancel');
    writeSet(dir, 1);
    const before = snapshot(dir);
    const { model } = tinyMlp(DataType.FLOAT, 64, 32, 8, 9);
    const cancel = new CancelToken();
    let tensors = 0;
    // Cancel once the first tensor is in the staged side file, as a signal handler would.
    const out = new OutputSet(path.join(dir, 'm.onnx'));
    const staged = out.staged(path.join(dir, 'm.onnx'));
    const watcher = setImmediate(() => {
      tensors = fs.readdirSync(out.stagingDir).length;
      cancel.cancel('SIGTERM');
    });
    let error: unknown;
    try {
      await saveModelAsync(model, path.join(dir, 'm.onnx'), { externalData: 'always', into: out, cancel });
      out.commit();
    } catch (err) {
      error = err;
    } finally {
      clearImmediate(watcher);
      out.abort();
    }
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).exitCode).toBe(143);
    expect((error as Error).message).toBe('stopped by SIGTERM: stopped cleanly, nothing written');
    expect(tensors).toBe(1); // the side file was being written: the stop came between tensors
    expect(fs.existsSync(staged)).toBe(false);
    expect(snapshot(dir)).toEqual(before);
    fs.rmSync(dir, { recursive: true });
  });

  it('a second signal runs the abort cleanups at once: staged files and the lock are removed', () => {
    const dir = tempDir('abort');
    const out = new OutputSet(path.join(dir, 'm.onnx'));
    fs.writeFileSync(out.staged(path.join(dir, 'm.onnx')), 'partial');
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(out.stagingDir), '.m.onnx.w4a8-lock'].sort());
    runAbortCleanups();
    expect(fs.readdirSync(dir)).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });
});
