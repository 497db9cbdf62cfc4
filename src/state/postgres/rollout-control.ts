/*
 * A rollout's progress and the operators' requests in PostgreSQL (see ../rollout-control.ts): one row
 * per stage and kind, replaced by one statement.
 */
import type { RolloutControl, RolloutProgress, RolloutRequest } from '../rollout-control.js';
import { SCHEMA, type StateDb } from './db.js';

export class PgRolloutControl implements RolloutControl {
  constructor(private readonly db: StateDb) {}

  private async put(stage: string, kind: string, body: unknown): Promise<void> {
    await this.db.query(`INSERT INTO ${SCHEMA}.rollout (stage, kind, body) VALUES ($1, $2, $3) ON CONFLICT (stage, kind) DO UPDATE SET body = EXCLUDED.body`, [stage, kind, JSON.stringify(body)]);
  }
  private async get<T>(stage: string, kind: string): Promise<T | undefined> {
    const r = await this.db.query<{ body: T }>(`SELECT body FROM ${SCHEMA}.rollout WHERE stage = $1 AND kind = $2`, [stage, kind]);
    return r.rows[0]?.body;
  }

  writeProgress(p: RolloutProgress): Promise<void> { return this.put(p.stage, 'progress', p); }
  readProgress(stage: string): Promise<RolloutProgress | undefined> { return this.get(stage, 'progress'); }
  request(r: RolloutRequest): Promise<void> { return this.put(r.stage, 'request', r); }
  readRequest(stage: string): Promise<RolloutRequest | undefined> { return this.get(stage, 'request'); }
  async clearRequest(stage: string): Promise<void> {
    await this.db.query(`DELETE FROM ${SCHEMA}.rollout WHERE stage = $1 AND kind = 'request'`, [stage]);
  }
}
