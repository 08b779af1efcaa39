// All-or-nothing output sets. Every file of a set (model, side files, tokenizer, report) is
// written into one hidden staging folder beside the destination, then swapped in by renames:
// the old primary file (the model) is moved aside first and the new one renamed in last, so a
// reader sees the old set, no model, or the new set, never a model beside another run's side
// file. A failure before or during the swap puts the old files back. A lock file beside the
// primary output (holding the writer's pid) keeps a second run off the same output; staging
// folders and locks of processes that no longer exist are removed by the next run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError, W4A8Error } from './errors';
import { registerAbortCleanup, signalPoint } from './cancel';
import { notRegularReason } from './regular_file';

const STAGING_TAG = '.w4a8-staging-';
const LOCK_SUFFIX = '.w4a8-lock';

/**
 * Fault injection for tests: called with the name of each file-system step of a set's life
 * ("lock", "staging", "backup:<name>", "rename:<name>", "restore:<name>", "cleanup"); a throw
 * there acts as that step failing.
 */
export const outputFaults: { hook?: (step: string) => void } = {};

function step(name: string): void {
  outputFaults.hook?.(name);
}

function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Creates the folder of `file` (mkdir -p); a path component that is a file is refused with
 * one line. Returns the folder, absolute.
 */
export function ensureOutputFolder(file: string): string {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new UsageError(`cannot create the output folder ${dir}: a part of that path is a file, not a folder`);
    throw new W4A8Error(`cannot create the output folder ${dir}: ${(err as Error).message}`);
  }
  if (!fs.statSync(dir).isDirectory()) throw new UsageError(`the output folder ${dir} is a file, not a folder`);
  return dir;
}

/**
 * Refuses an output path that names something other than a regular file (or a symbolic link,
 * which is replaced by the new file: the link's target is never written).
 */
export function checkOutputPath(file: string, label = 'output'): void {
  const st = lstatOrUndefined(file);
  if (!st || st.isFile() || st.isSymbolicLink()) return;
  if (st.isDirectory()) throw new UsageError(`the ${label} ${file} is a folder; give a file path (e.g. ${path.join(file, 'model.onnx')})`);
  throw new UsageError(`the ${label} ${file} exists and is ${notRegularReason(st)}; outputs replace only regular files: choose another path`);
}

function lockPath(primary: string): string {
  return path.join(path.dirname(primary), `.${path.basename(primary)}${LOCK_SUFFIX}`);
}

/** The pid a lock file names; undefined when it is empty, unreadable or not a pid; null when it is gone. */
function lockHolder(lock: string): number | undefined | null {
  let text: string;
  try {
    text = fs.readFileSync(lock, 'utf8').trim();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : undefined;
  }
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/**
 * Creates the lock holding our pid, complete from its first instant: the pid is written to a
 * file of our own, which is then hard-linked to the lock's name (atomic; fails if it exists).
 * A lock created empty and written afterwards would read as pid 0 (dead) to a second run in
 * between, which would then take it over: two writers on one output.
 */
function createLock(lock: string): boolean {
  const mine = `${lock}.${process.pid}`;
  fs.writeFileSync(mine, `${process.pid}\n`);
  try {
    fs.linkSync(mine, lock);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw err;
    // A file system without hard links: create, then write (a reader in between sees no pid and waits).
    try {
      const fd = fs.openSync(lock, 'wx');
      try {
        fs.writeSync(fd, `${process.pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

/** Sleeps the thread for `ms` (the lock is taken synchronously, before any async work). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes the lock of `primary`. A lock left by a dead process is taken over under a second lock,
 * `<lock>.break`, held only while one run removes the stale lock: with the breakers in single
 * file, the lock a breaker renames away is always the stale one it read. (Without it, a run
 * could rename away a fresh lock another breaker had just made; while it put that back a third
 * run could create its own: two holders.) A break lock whose run died mid-takeover (SIGKILL
 * within those few file operations) is not guessed at: the message names it for removal.
 */
function takeLock(primary: string): string {
  const lock = lockPath(primary);
  const breakLock = `${lock}.break`;
  for (let attempt = 0; attempt < 50; attempt++) {
    step('lock');
    try {
      if (createLock(lock)) return lock;
    } catch (err) {
      throw new W4A8Error(`cannot create the lock file ${lock}: ${(err as Error).message}`);
    }
    const holder = lockHolder(lock);
    if (holder === null) continue; // removed meanwhile: try again
    if (holder !== undefined && pidAlive(holder)) {
      throw new W4A8Error(`another w4a8 run (pid ${holder}) is writing ${primary}; wait for it to finish or choose another -o (lock: ${lock})`);
    }
    // A lock of a dead process (or an unreadable one left by a crash between create and write).
    const st = lstatOrUndefined(lock);
    if (holder === undefined && st && Date.now() - st.mtimeMs < 5000) {
      throw new W4A8Error(`another w4a8 run is starting to write ${primary}; wait for it or choose another -o (lock: ${lock})`);
    }
    let breaking: boolean;
    try {
      breaking = createLock(breakLock);
    } catch (err) {
      throw new W4A8Error(`cannot create the lock file ${breakLock}: ${(err as Error).message}`);
    }
    if (!breaking) {
      const breaker = lockHolder(breakLock);
      if (breaker !== null && (breaker === undefined || !pidAlive(breaker))) {
        throw new W4A8Error(`a w4a8 run${breaker ? ` (pid ${breaker})` : ''} died while taking over the stale lock of ${primary}; remove ${breakLock} and ${lock} if no w4a8 run is writing there`);
      }
      sleepSync(5); // another run is taking the stale lock over: see who holds it then
      continue;
    }
    try {
      // In single file now: the lock still read as stale is the one renamed away (nobody else
      // removes it; its dead writer cannot). Read it again: it may have changed hands before we got here.
      const again = lockHolder(lock);
      const stillOld = again !== undefined || Date.now() - (lstatOrUndefined(lock)?.mtimeMs ?? 0) >= 5000;
      if (again === holder && stillOld) {
        const claimed = `${lock}.stale-${process.pid}`;
        fs.renameSync(lock, claimed);
        fs.rmSync(claimed, { force: true });
      }
    } catch {
      // gone already (a holder that finished): try again
    } finally {
      fs.rmSync(breakLock, { force: true });
    }
  }
  throw new W4A8Error(`cannot take the lock ${lockPath(primary)} for ${primary}; remove it if no w4a8 run is writing there`);
}

/** Removes staging folders beside `primary` left by processes that no longer exist. */
export function removeStaleStaging(primary: string): string[] {
  const dir = path.dirname(primary);
  const prefix = `.${path.basename(primary)}${STAGING_TAG}`;
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const pid = Number(n.slice(prefix.length).split('-')[0]);
    if (pidAlive(pid)) continue;
    rollBackInterruptedCommit(dir, path.join(dir, n), path.basename(primary));
    fs.rmSync(path.join(dir, n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}

const JOURNAL = '.commit.json';

/**
 * A process killed (SIGKILL, power loss) in the middle of its swap left a journal in its
 * staging folder: if the new primary was not yet renamed in, the files already swapped are
 * put back (their previous versions restored, new ones removed), so the folder holds the
 * previous set again; if it was, the new set is complete and only the staging folder goes.
 */
function rollBackInterruptedCommit(dir: string, staging: string, primaryName: string): void {
  let names: string[];
  try {
    names = JSON.parse(fs.readFileSync(path.join(staging, JOURNAL), 'utf8')) as string[];
  } catch {
    return; // no journal: it never started swapping, the destination was not touched
  }
  if (!Array.isArray(names) || !fs.existsSync(path.join(staging, primaryName)) || names.some((n) => typeof n !== 'string' || n !== path.basename(n))) return;
  for (const n of names) {
    const previous = path.join(staging, '.previous', n);
    const dest = path.join(dir, n);
    if (fs.existsSync(path.join(staging, n))) {
      // Not swapped in; its previous version may have been moved aside already.
      if (fs.existsSync(previous) && !fs.existsSync(dest)) fs.renameSync(previous, dest);
    } else if (fs.existsSync(previous)) fs.renameSync(previous, dest);
    else fs.rmSync(dest, { force: true });
  }
}

export interface OutputSetOptions {
  /** Files never to replace (the inputs); an output naming one is refused. */
  inputs?: string[];
}

/**
 * One run's output files. `primary` is the file that makes the set visible (the model): it is
 * renamed in last. Call `add` for each other file before writing, write each to `staged(file)`,
 * then `commit()`; `abort()` (or a second Ctrl-C) removes everything staged.
 */
export class OutputSet {
  readonly primary: string;
  readonly dir: string;
  readonly stagingDir: string;
  private readonly files: string[] = [];
  private lock?: string;
  private done = false;
  /** The topmost folder this set created (mkdir -p), removed again if the set is aborted and it is empty. */
  private createdFolder?: string;
  private unregister: () => void;

  constructor(primary: string, opts: OutputSetOptions = {}) {
    this.primary = path.resolve(primary);
    checkOutputPath(this.primary);
    for (const input of opts.inputs ?? []) refuseInput(this.primary, input);
    const existed = firstExisting(path.dirname(this.primary));
    this.dir = ensureOutputFolder(this.primary);
    if (existed !== this.dir) this.createdFolder = path.join(existed, path.relative(existed, this.dir).split(path.sep)[0]);
    this.lock = takeLock(this.primary);
    try {
      removeStaleStaging(this.primary);
      this.stagingDir = path.join(this.dir, `.${path.basename(this.primary)}${STAGING_TAG}${process.pid}-${Date.now().toString(36)}`);
      step('staging');
      fs.mkdirSync(this.stagingDir);
    } catch (err) {
      this.releaseLock();
      this.removeCreatedFolders();
      throw err;
    }
    this.unregister = registerAbortCleanup(() => this.abort());
    this.files.push(this.primary);
    signalPoint('staged');
  }

  /** Adds a file to the set (beside the primary or anywhere in its folder); returns its absolute path. */
  add(file: string, label = 'output'): string {
    const abs = path.resolve(file);
    if (this.files.includes(abs)) return abs;
    if (path.dirname(abs) !== this.dir) throw new RangeError(`OutputSet.add: ${abs} is not in the output folder ${this.dir}`);
    checkOutputPath(abs, label);
    this.files.push(abs);
    return abs;
  }

  /** Where to write `file` (added first) until the commit. */
  staged(file: string): string {
    const abs = path.resolve(file);
    if (!this.files.includes(abs)) throw new RangeError(`OutputSet.staged: ${abs} was not added to the set`);
    return path.join(this.stagingDir, path.basename(abs));
  }

  /** Swaps every staged file in (files never staged are left alone), primary last. */
  commit(): void {
    if (this.done) throw new Error('OutputSet.commit: the set is already committed or aborted');
    const others = this.files.slice(1).filter((f) => fs.existsSync(this.staged(f)));
    const order = [...others, this.primary].filter((f) => fs.existsSync(this.staged(f)));
    const backupDir = path.join(this.stagingDir, '.previous');
    const undo: (() => void)[] = [];
    try {
      for (const f of order) checkOutputPath(f); // again: something may have appeared meanwhile
      fs.mkdirSync(backupDir);
      // The journal lets the next run undo a swap cut short by SIGKILL.
      fs.writeFileSync(path.join(this.stagingDir, JOURNAL), JSON.stringify(order.map((f) => path.basename(f))));
      // The old model goes first, so no reader pairs it with the new side files.
      const moveAside = (f: string) => {
        if (!lstatOrUndefined(f)) return;
        step(`backup:${path.basename(f)}`);
        const b = path.join(backupDir, path.basename(f));
        fs.renameSync(f, b);
        undo.push(() => fs.renameSync(b, f));
      };
      if (order.includes(this.primary)) moveAside(this.primary);
      for (const f of order) {
        if (f !== this.primary) moveAside(f);
        step(`rename:${path.basename(f)}`);
        const s = this.staged(f);
        fs.renameSync(s, f);
        undo.push(() => fs.renameSync(f, s));
      }
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          step('restore');
          u();
        } catch {
          // keep restoring the others; the staging folder keeps what could not be moved back
        }
      }
      this.abort();
      throw err;
    }
    this.finish();
  }

  /** Removes everything staged; the destination keeps its previous files. */
  abort(): void {
    if (this.done) return;
    this.finish();
    this.removeCreatedFolders();
  }

  /** Folders made for this set and still empty go again: a refused run leaves no trace. */
  private removeCreatedFolders(): void {
    if (!this.createdFolder) return;
    for (let d = this.dir; d.startsWith(this.createdFolder); d = path.dirname(d)) {
      try {
        fs.rmdirSync(d);
      } catch {
        return; // not empty (or gone): keep it and everything above
      }
      if (d === this.createdFolder) return;
    }
  }

  private finish(): void {
    this.done = true;
    this.unregister();
    try {
      step('cleanup');
      fs.rmSync(this.stagingDir, { recursive: true, force: true });
    } finally {
      this.releaseLock();
    }
  }

  /** Removes the lock if it is still ours (never another run's). */
  private releaseLock(): void {
    if (this.lock && lockHolder(this.lock) === process.pid) fs.rmSync(this.lock, { force: true });
    this.lock = undefined;
  }
}

function firstExisting(dir: string): string {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

function refuseInput(output: string, input: string): void {
  if (path.resolve(input) === output) throw new UsageError(`the output ${output} is the input; inputs are never overwritten: choose another -o`);
  try {
    const a = fs.statSync(input);
    const b = fs.statSync(output);
    if (a.dev === b.dev && a.ino === b.ino) throw new UsageError(`the output ${output} is the input ${input} (the same file); inputs are never overwritten: choose another -o`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
  }
}
