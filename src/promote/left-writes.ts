/*
 * After a flip or rollback: the slot left behind keeps in its own database what users wrote to it since
 * it went live, and the slot now serving does not have it. Until a rollback data report exists, the
 * operator is told how much, where the engine can tell cheaply (src/data/writes.ts). Read-only; a
 * failure to read becomes a line of its own, never a failed run: traffic has already moved.
 */
import { connectionOf, type Stage } from '../config/model.js';
import { describeConnection } from '../data/connection.js';
import { openDb } from '../data/db.js';
import { writesSince } from '../data/writes.js';
import { describeError } from '../errors.js';
import type { Plan } from '../plan/plan.js';
import type { StageState } from '../state/store.js';

export async function writesLeftBehind(stage: Stage, plan: Plan, recorded: StageState | undefined): Promise<string[]> {
  const lines: string[] = [];
  for (const s of plan.services) {
    const db = stage.services[s.service]?.database;
    if (!db || db.strategy === 'none' || db.strategy === 'shared') continue;
    const mark = recorded?.services[s.service]?.data?.[s.live]?.writes;
    const conn = connectionOf(db, s.live);
    const head = `${s.service}: writes made to slot ${s.live} since it went live stay in its database ${conn.database}; slot ${s.target} serves without them`;
    if (!mark) {
      lines.push(`${head} (how many is unknown: no write counter was recorded when slot ${s.live} was promoted)`);
      continue;
    }
    try {
      const open = await openDb(conn);
      try {
        lines.push(`${head}: ${await writesSince(open, mark)}`);
      } finally {
        await open.close();
      }
    } catch (err) {
      lines.push(`${head} (could not count them: ${describeConnection(conn)}: ${describeError(err)})`);
    }
  }
  return lines;
}
