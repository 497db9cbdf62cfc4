/*
 * PostgreSQL's fast path for a snapshot: CREATE DATABASE <target> TEMPLATE <source> copies the source's
 * files on the server itself, with no dump, no restore and no index rebuild. PostgreSQL refuses it
 * while any other session is connected to the source, and holds new connections to the source until
 * the copy is done, so it is used only when the source can be briefly without connections:
 *   auto      the source has no other session at that moment (else pg_dump | pg_restore);
 *   template  the operator accepts that the source's other sessions are ended for the copy;
 *   off       never.
 * Only when source and target are on one server as the orchestrator reaches them (host and port).
 */
import type { DatabaseConnection } from '../config/model.js';
import type { Logger } from '../log.js';
import { describeConnection, ident, sameServer } from './connection.js';
import { DatabaseError } from './db.js';
import { openDb } from './db.js';
import { countRows } from './row-counts.js';

export type FastPath = 'auto' | 'template' | 'off';

/** Sessions connected to the database named $1 other than this one (run from another database). */
export const OTHER_SESSIONS_SQL = 'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()';
/** Ends them; answers how many were signalled. */
export const END_SESSIONS_SQL = 'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()';

/** WITH (FORCE) ends stray sessions of the target only: the idle slot is stopped before the data step. */
export function dropDatabaseSql(name: string): string {
  return `DROP DATABASE IF EXISTS ${ident('postgres', name)} WITH (FORCE)`;
}

/**
 * FILE_COPY (PostgreSQL 15+) copies the files and checkpoints, instead of writing every block of the
 * copy to the WAL (WAL_LOG, 15's default): several times faster on a large database (bench/snapshot.ts).
 * Older servers know only the file copy and no STRATEGY keyword.
 */
export function createFromTemplateSql(target: string, source: string, serverVersion: number): string {
  return `CREATE DATABASE ${ident('postgres', target)} TEMPLATE ${ident('postgres', source)}${serverVersion >= 150000 ? ' STRATEGY FILE_COPY' : ''}`;
}

/** Why the fast path is not even tried, or undefined when it may be. */
export function templateRefusal(src: DatabaseConnection, dst: DatabaseConnection, mode: FastPath): string | undefined {
  if (src.engine !== 'postgres') return undefined;
  if (mode === 'off') return 'fastPath is off';
  if (!sameServer(src, dst)) return `source and target are on different servers (${src.host}:${src.port}, ${dst.host}:${dst.port})`;
  return undefined;
}

export type TemplateOutcome =
  | { copied: true; counts: Map<string, number>; why: string }
  | { copied: false; why: string };

const OBJECT_IN_USE = '55006';
const INSUFFICIENT_PRIVILEGE = '42501';
/** In template mode: how often the source's sessions are ended before giving up (an app reconnects fast). */
const TEMPLATE_ATTEMPTS = 3;

/**
 * Copies src into dst by template when PostgreSQL allows it now; otherwise says why not, and the
 * caller falls back to pg_dump | pg_restore. The caller has checked that dst is neither the source
 * nor a live database. The source's rows are counted just before the copy, in a session closed
 * before CREATE DATABASE (which refuses to run while any other session is on the source).
 */
export async function copyByTemplate(src: DatabaseConnection, dst: DatabaseConnection, mode: 'auto' | 'template', logger: Logger): Promise<TemplateOutcome> {
  const admin = await openDb(dst, { database: 'postgres' });
  try {
    const others = async () => Number((await admin.query<{ n: number }>(OTHER_SESSIONS_SQL, [src.database]))[0]?.n ?? 0);
    const before = await others();
    if (before > 0 && mode === 'auto') {
      return { copied: false, why: `${before} other session(s) on ${src.database} (fastPath auto copies by template only from a database nobody is connected to; fastPath: template ends them)` };
    }
    const [version] = await admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    const source = await openDb(src, { readOnly: true });
    let counts: Map<string, number>;
    try {
      await source.exec('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      counts = await countRows(source, 'postgres');
      await source.exec('COMMIT');
    } finally {
      await source.close();
    }
    for (let attempt = 1; ; attempt++) {
      const ended = mode === 'template' ? Number((await admin.query<{ n: number }>(END_SESSIONS_SQL, [src.database]))[0]?.n ?? 0) : 0;
      if (ended > 0) logger.warn(`ended ${ended} session(s) on ${describeConnection(src)} for CREATE DATABASE ... TEMPLATE (fastPath: template)`);
      await admin.exec(dropDatabaseSql(dst.database));
      try {
        await admin.exec(createFromTemplateSql(dst.database, src.database, Number(version?.v ?? 0)));
        const how = mode === 'template' ? `fastPath template${before > 0 ? `, ended ${before} session(s) of the source` : ''}` : 'no other session on the source';
        return { copied: true, counts, why: `same server, ${how}` };
      } catch (err) {
        const code = err instanceof DatabaseError ? err.code : undefined;
        if (code === OBJECT_IN_USE && mode === 'template' && attempt < TEMPLATE_ATTEMPTS) continue;
        if (code === OBJECT_IN_USE || code === INSUFFICIENT_PRIVILEGE) return { copied: false, why: `CREATE DATABASE ... TEMPLATE refused: ${err instanceof DatabaseError ? err.reason : String(err)}` };
        throw err;
      }
    }
  } finally {
    await admin.close();
  }
}
