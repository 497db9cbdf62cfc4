/*
 * Recorded state and history in PostgreSQL: one row per stage (replaced by one statement, so a reader
 * sees the old state or the new), and history rows ordered by their id.
 */
import type { HistoryEntry, StageState, StateStore } from '../store.js';
import { SCHEMA, type StateDb } from './db.js';

export class PgStateStore implements StateStore {
  constructor(private readonly db: StateDb) {}

  async read(stage: string): Promise<StageState | undefined> {
    const r = await this.db.query<{ state: StageState }>(`SELECT state FROM ${SCHEMA}.stage_state WHERE stage = $1`, [stage]);
    return r.rows[0]?.state;
  }

  async write(state: StageState): Promise<void> {
    await this.db.query(
      `INSERT INTO ${SCHEMA}.stage_state (stage, state, updated) VALUES ($1, $2, now()) ON CONFLICT (stage) DO UPDATE SET state = EXCLUDED.state, updated = EXCLUDED.updated`,
      [state.stage, JSON.stringify(state)],
    );
  }

  async appendHistory(entry: HistoryEntry): Promise<void> {
    await this.db.query(`INSERT INTO ${SCHEMA}.history (stage, entry) VALUES ($1, $2)`, [entry.stage, JSON.stringify(entry)]);
  }

  async history(stage: string, limit = 20): Promise<HistoryEntry[]> {
    const r = await this.db.query<{ entry: HistoryEntry }>(
      `SELECT entry FROM (SELECT id, entry FROM ${SCHEMA}.history WHERE stage = $1 ORDER BY id DESC LIMIT $2) last ORDER BY id`,
      [stage, limit],
    );
    return r.rows.map((row) => row.entry);
  }
}
