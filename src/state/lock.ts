/*
 * One lock per stage, so two promotions of a stage never run at once. LockStore is what commands use;
 * this file holds the local directory's (postgres/lock.ts holds PostgreSQL's). The lock file says who holds it
 * (user, machine, pid, since when, why); a running command refreshes its heartbeat, and a lock whose
 * heartbeat is older than its time-to-live, or whose process is gone from this machine, is stale and
 * may be taken over, so a crashed run never blocks the stage for good. A lock taken by hand
 * (`updateserver lock acquire`) has no heartbeat and lasts until released, unless given a ttl.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UpdateserverError } from '../errors.js';

export interface LockInfo {
  stage: string;
  token: string;
  user: string;
  machine: string;
  pid: number;
  since: string;
  message: string;
  /** Refreshed while the holder runs; undefined for a lock taken by hand. */
  heartbeat?: string;
  /** Stale after this many ms without a heartbeat (or since `since` for a manual lock with a ttl). */
  ttlMs?: number;
  /** PostgreSQL store: the backend pid of the session holding the advisory lock (a running command). */
  session?: number;
}

export interface AcquireOptions {
  message?: string;
  /** true for a running command (the lock lives as long as it does); false for a lock taken by hand. */
  heartbeat: boolean;
  ttlMs?: number;
  onStale?: (l: LockInfo, why: string) => void;
}

/** One lock per stage, wherever it is kept (a local directory, PostgreSQL). */
export interface LockStore {
  read(stage: string): Promise<LockInfo | undefined>;
  /** Takes the lock or throws LockHeld. A stale lock is taken over (and said so through onStale). */
  acquire(stage: string, opts: AcquireOptions): Promise<HeldLock>;
  /** Why the holder's lock no longer counts (its process is gone, its ttl ran out), or undefined. */
  stale(l: LockInfo): Promise<string | undefined>;
  /** Removes the lock whoever holds it (lock release --force), returning who held it. */
  forceRelease(stage: string): Promise<LockInfo | undefined>;
}

export interface HeldLock {
  readonly info: LockInfo;
  release(): Promise<void>;
}

/** The holder record of a new lock taken by this process. */
export function newHolder(stage: string, opts: AcquireOptions): LockInfo {
  const now = new Date().toISOString();
  return {
    stage, token: randomUUID(), user: userInfo().username, machine: hostname(), pid: process.pid, since: now,
    message: opts.message ?? '', ...(opts.heartbeat ? { heartbeat: now, ttlMs: opts.ttlMs ?? 60_000 } : opts.ttlMs ? { ttlMs: opts.ttlMs } : {}),
  };
}

/** A lock taken by hand whose ttl ran out. */
export function manualExpired(l: LockInfo, now = Date.now()): string | undefined {
  const last = Date.parse(l.since);
  return l.heartbeat === undefined && l.ttlMs !== undefined && now - last > l.ttlMs ? `no sign of life for ${Math.round((now - last) / 1000)} s` : undefined;
}

export class LockHeld extends UpdateserverError {
  constructor(readonly holder: LockInfo) {
    super(`stage ${holder.stage} is locked by ${describeHolder(holder)}`, {
      hint: holder.heartbeat
        ? 'wait for that run to finish (or use --wait); a crashed run\'s lock expires by itself'
        : `it was taken by hand; release it when the work is done: updateserver lock release ${holder.stage}`,
    });
  }
}

export function describeHolder(l: LockInfo): string {
  return `${l.user}@${l.machine} (pid ${l.pid}) since ${l.since}${l.message ? `: "${l.message}"` : ''}`;
}

/** Whether a process of this machine runs: a zombie (dead, not yet reaped) does not count. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
  }
}

export function isStale(l: LockInfo, now = Date.now()): string | undefined {
  if (l.machine === hostname() && !pidAlive(l.pid) && l.heartbeat !== undefined) return `its process ${l.pid} is gone`;
  const last = Date.parse(l.heartbeat ?? l.since);
  if (l.ttlMs !== undefined && now - last > l.ttlMs) return `no sign of life for ${Math.round((now - last) / 1000)} s`;
  return undefined;
}

export class FileLockStore implements LockStore {
  constructor(readonly dir: string) {}
  private file(stage: string) { return join(this.dir, 'locks', `${stage}.json`); }

  async read(stage: string): Promise<LockInfo | undefined> {
    try {
      return JSON.parse(await readFile(this.file(stage), 'utf8')) as LockInfo;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  stale(l: LockInfo): Promise<string | undefined> { return Promise.resolve(isStale(l)); }

  async acquire(stage: string, opts: AcquireOptions): Promise<HeldLock> {
    await mkdir(join(this.dir, 'locks'), { recursive: true });
    const info = newHolder(stage, opts);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        // O_EXCL: of two runs creating the lock at once, exactly one succeeds.
        const fh = await open(this.file(stage), 'wx');
        try { await fh.writeFile(JSON.stringify(info, null, 2)); await fh.sync(); } finally { await fh.close(); }
        return new FileHeldLock(this, info);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await this.read(stage);
      if (!holder) continue;
      const why = isStale(holder);
      if (!why) throw new LockHeld(holder);
      // Move the stale lock aside under a name of our own: only one taker's rename can find it.
      const aside = `${this.file(stage)}.stale-${info.token}`;
      try { await rename(this.file(stage), aside); } catch { continue; }
      const moved = JSON.parse(await readFile(aside, 'utf8')) as LockInfo;
      await unlink(aside).catch(() => {});
      if (moved.token !== holder.token) {
        // We moved a fresh lock someone else just took: put it back and give way.
        await writeFile(this.file(stage), JSON.stringify(moved, null, 2), { flag: 'wx' }).catch(() => {});
        throw new LockHeld(moved);
      }
      opts.onStale?.(holder, why);
    }
    throw new UpdateserverError(`could not take the lock of stage ${stage}: it changed hands several times`);
  }

  async forceRelease(stage: string): Promise<LockInfo | undefined> {
    const holder = await this.read(stage);
    if (holder) await unlink(this.file(stage)).catch(() => {});
    return holder;
  }

  async releaseIfMine(info: LockInfo): Promise<boolean> {
    const current = await this.read(info.stage);
    if (current?.token !== info.token) return false;
    await unlink(this.file(info.stage));
    return true;
  }

  async beat(info: LockInfo): Promise<void> {
    const current = await this.read(info.stage);
    if (current?.token !== info.token) return;
    const next = { ...current, heartbeat: new Date().toISOString() };
    const tmp = `${this.file(info.stage)}.${info.token}.tmp`;
    await writeFile(tmp, JSON.stringify(next, null, 2));
    await rename(tmp, this.file(info.stage));
  }
}

class FileHeldLock implements HeldLock {
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly store: FileLockStore, readonly info: LockInfo) {
    if (info.heartbeat !== undefined) {
      this.timer = setInterval(() => { void store.beat(info).catch(() => {}); }, Math.max(1000, (info.ttlMs ?? 60_000) / 4));
      this.timer.unref();
    }
  }
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.store.releaseIfMine(this.info);
  }
}

/** Waits for the stage's lock, polling, up to waitMs; then takes it. */
export async function acquireWaiting(store: LockStore, stage: string, opts: AcquireOptions & { waitMs?: number; onWait?: (h: LockInfo) => void }): Promise<HeldLock> {
  const deadline = Date.now() + (opts.waitMs ?? 0);
  let told = false;
  for (;;) {
    try {
      return await store.acquire(stage, opts);
    } catch (err) {
      if (!(err instanceof LockHeld) || Date.now() >= deadline) throw err;
      if (!told) { opts.onWait?.(err.holder); told = true; }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
