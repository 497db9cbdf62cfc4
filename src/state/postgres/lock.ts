/*
 * The stage lock in PostgreSQL. A running command holds pg_try_advisory_lock(hash of the stage) on a
 * session of its own for the whole run, and writes its holder record into updateserver.locks so that
 * a refused command can name it. When the holder dies, PostgreSQL ends its session and frees the
 * advisory lock: a record whose advisory lock is free is stale, and the next command takes it over.
 * A lock taken by hand (`lock acquire`) outlives the CLI process, so it is a record with no session;
 * it blocks until released or until its ttl runs out.
 */
import type pg from 'pg';
import { UpdateserverError } from '../../errors.js';
import { hostname } from 'node:os';
import { LockHeld, manualExpired, newHolder, pidAlive, type AcquireOptions, type HeldLock, type LockInfo, type LockStore } from '../lock.js';
import { LOCK_KEY, SCHEMA, type StateDb } from './db.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function tryAdvisory(c: pg.ClientBase, stage: string): Promise<boolean> {
  return (await c.query<{ got: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS got`, [stage])).rows[0]!.got;
}
async function unlockAdvisory(c: pg.ClientBase, stage: string): Promise<void> {
  await c.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`, [stage]);
}
async function readRow(c: pg.ClientBase, stage: string): Promise<LockInfo | undefined> {
  return (await c.query<{ holder: LockInfo }>(`SELECT holder FROM ${SCHEMA}.locks WHERE stage = $1`, [stage])).rows[0]?.holder;
}

export class PgLockStore implements LockStore {
  constructor(private readonly db: StateDb) {}

  async read(stage: string): Promise<LockInfo | undefined> {
    return (await this.db.query<{ holder: LockInfo }>(`SELECT holder FROM ${SCHEMA}.locks WHERE stage = $1`, [stage])).rows[0]?.holder;
  }

  async stale(l: LockInfo): Promise<string | undefined> {
    if (l.heartbeat === undefined) return manualExpired(l);
    // A running command's record counts as long as its session holds the advisory lock.
    const free = await this.db.withClient(async (c) => {
      const got = await tryAdvisory(c, l.stage);
      if (got) await unlockAdvisory(c, l.stage);
      return got;
    });
    return free ? sessionGone(l) : undefined;
  }

  async acquire(stage: string, opts: AcquireOptions): Promise<HeldLock> {
    const client = await this.db.dedicated();
    let kept = false;
    try {
      const info: LockInfo = { ...newHolder(stage, opts), ...(opts.heartbeat ? { session: await backendPid(client) } : {}) };
      // A running command's lock lives as long as its session: no heartbeat to refresh, no ttl.
      if (opts.heartbeat) delete info.ttlMs;
      for (let attempt = 0; attempt < 50; attempt++) {
        if (!(await tryAdvisory(client, stage))) {
          const holder = await readRow(client, stage);
          // A holder that died on this machine a moment ago: the server ends its session as soon as it
          // notices the closed connection, which frees the advisory lock. Give it that moment.
          if (holder && !(holder.session !== undefined && holder.machine === hostname() && !pidAlive(holder.pid))) throw new LockHeld(holder);
          // The holder has its advisory lock but has not written its record yet (or has just deleted it).
          if (attempt === 49 && holder) throw new LockHeld(holder);
          await sleep(100);
          continue;
        }
        // No running command holds the stage now: a record left is a lock by hand, or a dead run's.
        const taken = await this.claim(client, stage, info, opts);
        if (!taken) { await unlockAdvisory(client, stage); continue; }
        if (opts.heartbeat) { kept = true; return new PgHeldLock(client, info); }
        await unlockAdvisory(client, stage);
        return new PgManualLock(this.db, info);
      }
      throw new UpdateserverError(`could not take the lock of stage ${stage}: a PostgreSQL session holds it without a holder record`, {
        hint: `see who: SELECT pid, application_name, client_addr FROM pg_locks JOIN pg_stat_activity USING (pid) WHERE locktype = 'advisory'`,
      });
    } finally {
      if (!kept) await client.end().catch(() => {});
    }
  }

  /** With the advisory lock held: writes our record unless a valid lock by hand is there. False: it changed meanwhile, try again. */
  private async claim(client: pg.Client, stage: string, info: LockInfo, opts: AcquireOptions): Promise<boolean> {
    const holder = await readRow(client, stage);
    if (holder) {
      const why = holder.heartbeat === undefined ? manualExpired(holder) : sessionGone(holder);
      if (!why) { await unlockAdvisory(client, stage); throw new LockHeld(holder); }
      const gone = await client.query(`DELETE FROM ${SCHEMA}.locks WHERE stage = $1 AND holder->>'token' = $2`, [stage, holder.token]);
      if (gone.rowCount !== 1) return false;
      opts.onStale?.(holder, why);
    }
    const put = await client.query(`INSERT INTO ${SCHEMA}.locks (stage, holder) VALUES ($1, $2) ON CONFLICT (stage) DO NOTHING`, [stage, JSON.stringify(info)]);
    return put.rowCount === 1;
  }

  async forceRelease(stage: string): Promise<LockInfo | undefined> {
    const r = await this.db.query<{ holder: LockInfo }>(`DELETE FROM ${SCHEMA}.locks WHERE stage = $1 RETURNING holder`, [stage]);
    const holder = r.rows[0]?.holder;
    // The session of a command still running keeps the advisory lock: ending it is what --force asks for.
    // Only the session that holds this stage's key: a backend pid alone may have been reused since.
    if (holder?.session !== undefined) {
      await this.db.query(
        `SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = $2 AND l.objsubid = 1
           AND ((l.classid::bigint << 32) | l.objid::bigint) = ${LOCK_KEY}`,
        [stage, holder.session],
      );
    }
    return holder;
  }
}

const sessionGone = (l: LockInfo) => `its PostgreSQL session ended (process ${l.pid} on ${l.machine} is gone)`;

async function backendPid(c: pg.Client): Promise<number> {
  return (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}

/** A running command's lock: its own session, holding the advisory lock until released or ended. */
class PgHeldLock implements HeldLock {
  constructor(private readonly client: pg.Client, readonly info: LockInfo) {}
  async release(): Promise<void> {
    try {
      await this.client.query(`DELETE FROM ${SCHEMA}.locks WHERE stage = $1 AND holder->>'token' = $2`, [this.info.stage, this.info.token]);
      await unlockAdvisory(this.client, this.info.stage);
    } finally {
      // Ending the session frees the advisory lock in any case.
      await this.client.end().catch(() => {});
    }
  }
}

/** A lock taken by hand: only the record, until released. */
class PgManualLock implements HeldLock {
  constructor(private readonly db: StateDb, readonly info: LockInfo) {}
  async release(): Promise<void> {
    await this.db.query(`DELETE FROM ${SCHEMA}.locks WHERE stage = $1 AND holder->>'token' = $2`, [this.info.stage, this.info.token]);
  }
}
