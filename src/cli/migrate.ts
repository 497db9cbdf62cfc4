/*
 * updateserver migrate status <stage>: per service and slot, the schema version, the last row of the
 * version table and what is pending. updateserver migrate resolve <stage> <service> <version>: after
 * a failed migration was repaired by hand, mark it ok so that the next run goes on (seed 000).
 */
import { userInfo } from 'node:os';
import { loadProfile } from '../config/load.js';
import { connectionOf, SLOTS, type SlotName, type Stage } from '../config/model.js';
import { ConfigError, EXIT_FAILED, EXIT_OK, describeError } from '../errors.js';
import { openDb } from '../data/db.js';
import { describeConnection } from '../data/connection.js';
import { loadMigrations } from '../data/migrations/files.js';
import { migrationStatus, resolveMigration } from '../data/migrations/runner.js';
import { withState } from '../state/backend.js';
import { fail, printJson } from './output.js';
import { slotOption } from './arguments.js';
import { checkMigrationFiles } from '../config/migration-files.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';
import { DEFAULT_SLOT } from '../config/slot.js';

/**
 * What to do about a slot database whose last migration failed. The idle slot of a copy or copy-self
 * stage is replaced by a fresh copy at the next promotion, which wipes the error row and any
 * resolution: the fix goes into the migration file (or the source's data). Any other database (shared,
 * a first stage's, a live one) is the one the next run uses: repair it, then resolve (seed 000).
 */
export function blockedAdvice(stage: Stage, service: string, slot: SlotName, live: boolean, version: number): string {
  const db = stage.services[service]!.database!;
  const copied = !live && (db.strategy === 'copy-self' || (db.strategy === 'copy' && stage.from !== undefined));
  if (copied) {
    const from = db.strategy === 'copy-self' ? 'this stage\'s live database' : `${stage.from}'s live database`;
    return `the next promotion replaces this database with a fresh copy of ${from}, so do not resolve it: fix the migration file (or the data in ${db.strategy === 'copy-self' ? stage.name : stage.from}'s live database) and run again: updateserver ${stage.name}`;
  }
  return `this database is kept (the next run migrates it as it is): repair it by hand (finish or undo version ${version}), then: updateserver migrate resolve ${stage.name} ${service} ${version} --slot ${slot}`;
}

export async function runMigrate(action: string, stageName: string, service: string | undefined, version: string | undefined, flags: PromoteFlags & { comment?: string }): Promise<number> {
  try {
    if (action !== 'status' && action !== 'resolve') {
      throw new ConfigError([{ file: 'command line', path: 'migrate', message: `unknown action ${JSON.stringify(action)} (status, resolve)` }]);
    }
    const slot = slotOption('--slot', (flags as { slot?: string }).slot) ?? DEFAULT_SLOT;
    const project = projectFrom(flags);
    const stage = await loadProfile(project, stageName);
    if (action === 'status') {
      // Misnamed or repeated migration files are bad input, refused before the state store or a database is opened.
      await checkMigrationFiles(project, stage);
      const recorded = await withState(project, stage, (s) => s.store.read(stage.name));
      const out: unknown[] = [];
      for (const s of Object.values(stage.services)) {
        if (!s.database) continue;
        const migrations = await loadMigrations(s.database.migrations);
        for (const slot of s.database.strategy === 'shared' ? [DEFAULT_SLOT] : SLOTS) {
          const conn = connectionOf(s.database, slot);
          const live = recorded?.services[s.name]?.live === slot;
          try {
            const db = await openDb(conn);
            try {
              const st = await migrationStatus(db, migrations);
              out.push({
                service: s.name, slot, live, database: describeConnection(conn), current: st.current ?? null, last: st.last ?? null, pending: st.pending.map((m) => `${m.version} ${m.name}`), blocked: st.blocked ?? null, changed: st.changed,
                ...(st.blocked ? { advice: blockedAdvice(stage, s.name, slot, live, st.blocked.version) } : {}),
              });
            } finally { await db.close(); }
          } catch (err) {
            out.push({ service: s.name, slot, live, database: describeConnection(conn), error: describeError(err) });
          }
        }
      }
      if (flags.json) printJson(out);
      else if (out.length === 0) process.stdout.write(`${stage.name}: no service has a database\n`);
      else for (const r of out as Array<Record<string, unknown>>) {
        process.stdout.write(`${r.service} slot ${r.slot}${r.live ? ' (live)' : ''} ${r.database}: ` + (r.error ? `unreachable: ${r.error}` :
          `version ${r.current ?? 'none'}${(r.pending as string[]).length ? `, pending ${(r.pending as string[]).join(', ')}` : ''}${r.blocked ? `, BLOCKED: version ${(r.blocked as { version: number }).version} is ${(r.blocked as { status: string }).status} — ${String(r.advice)}` : ''}`) + '\n');
      }
      // Like `status`: a script learns from the exit status that a database needs attention.
      return (out as Array<Record<string, unknown>>).some((r) => r.error || r.blocked) ? EXIT_FAILED : EXIT_OK;
    }
    if (action === 'resolve') {
      const s = service === undefined || !Object.hasOwn(stage.services, service) ? undefined : stage.services[service];
      if (!s?.database) throw new ConfigError([{ file: 'command line', path: 'service', message: `service ${service === undefined ? '(none given)' : JSON.stringify(service)} has no database in ${stage.name} (${stage.file})` }]);
      const v = Number(version);
      if (version === undefined || !/^\d+$/.test(version) || !Number.isSafeInteger(v)) throw new ConfigError([{ file: 'command line', path: 'version', message: 'expected the version number to resolve' }]);
      const conn = connectionOf(s.database, slot);
      const db = await openDb(conn);
      try {
        // The migration may have been fixed since it failed: its current checksum is what ran by hand.
        const fixed = (await loadMigrations(s.database.migrations)).find((m) => m.version === v);
        await resolveMigration(db, v, { appliedBy: userInfo().username, ...(flags.comment ? { comment: flags.comment } : {}), ...(fixed ? { checksum: fixed.checksum } : {}) });
      } finally { await db.close(); }
      process.stdout.write(`${describeConnection(conn)}: migration ${v} marked ok (resolved by hand)\n`);
      return EXIT_OK;
    }
    throw new ConfigError([{ file: 'command line', path: 'migrate', message: `unknown action "${action}" (status, resolve)` }]);
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
