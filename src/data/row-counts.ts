/*
 * Per-table row counts: what a copy is checked against, table by table. The change log
 * (updateserver_changes, src/data/changes/) is not the application's data: pg_dump leaves its rows out
 * and the copy's own log starts empty, so it is not counted.
 */
import type { DatabaseConnection } from '../config/model.js';
import type { Db } from './db.js';

export async function countRows(db: Db, engine: DatabaseConnection['engine']): Promise<Map<string, number>> {
  const tables = engine === 'postgres'
    ? await db.query<{ t: string }>(`SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relname <> 'updateserver_changes' ORDER BY 1`)
    : await db.query<{ t: string }>(`SELECT CONCAT('\`', REPLACE(TABLE_NAME, '\`', '\`\`'), '\`') AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> 'updateserver_changes' ORDER BY 1`);
  const counts = new Map<string, number>();
  for (const { t } of tables) {
    const [row] = await db.query<{ n: string | number }>(`SELECT COUNT(*) AS n FROM ${t}`);
    counts.set(t, Number(row?.n ?? 0));
  }
  return counts;
}

/** The differences between the source's counts and the copy's, one line per table. */
export function compareCounts(source: Map<string, number>, target: Map<string, number>): string[] {
  const diffs: string[] = [];
  for (const [t, n] of source) {
    const m = target.get(t);
    if (m !== n) diffs.push(`${t}: source ${n} rows, copy ${m ?? 'missing'}`);
  }
  for (const t of target.keys()) if (!source.has(t)) diffs.push(`${t}: not in the source`);
  return diffs;
}
