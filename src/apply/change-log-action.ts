/*
 * The data phase's last step for copy and copy-self: a fresh change log on the idle slot's database,
 * after its migrations (src/data/changes/; the copy arrived without its source's, see snapshot.ts). A failure stops the run before the switch: without the log, a rollback could
 * not say what users wrote to this slot, which is what a copy per slot risks losing.
 */
import { openDb } from '../data/db.js';
import { describeConnection } from '../data/connection.js';
import { installChangeLog } from '../data/changes/log.js';
import type { Action } from '../plan/plan.js';
import type { ApplyContext } from './context.js';

export async function runChangeLog(ctx: ApplyContext, action: Extract<Action, { kind: 'change-log' }>): Promise<void> {
  const db = await openDb(action.connection);
  try {
    const tables = await installChangeLog(db, action.statements);
    const noKey = tables.filter((t) => t.pk.length === 0).map((t) => t.name);
    ctx.logger.info(`${action.service}: change log installed on ${describeConnection(action.connection)}: ${tables.length} table(s)${noKey.length ? ` (without a primary key, so reported but never replayed: ${noKey.join(', ')})` : ''}`);
  } finally {
    await db.close();
  }
}
