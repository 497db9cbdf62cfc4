/*
 * The report of what users wrote to the slot traffic leaves (issue 21) as a step of the plan, so that
 * its one write, the mark left in each change log read, is plan text like every other statement
 * (issue 16): after a flip or rollback its own last phase, after a failed post check or watch the end
 * of the automatic rollback's failure path.
 */
import { connectionOf, type Stage } from '../config/model.js';
import { markStatement } from '../data/changes/log-sql.js';
import type { Action, Phase, ServicePlan } from './plan.js';

export type ReportAction = Extract<Action, { kind: 'report-changes' }>;

/**
 * newSlotLeft: an automatic rollback leaves the new slot (the plan's target); a flip or rollback leaves
 * the slot that was live. Only services with a database per slot (copy, copy-self) leave data behind.
 */
export function reportAction(stage: Pick<Stage, 'services'>, services: readonly ServicePlan[], newSlotLeft: boolean, action: string): ReportAction | undefined {
  const list = services.flatMap((s) => {
    const db = stage.services[s.service]?.database;
    if (!db || db.strategy === 'none' || db.strategy === 'shared') return [];
    const left = newSlotLeft ? s.target : s.live;
    const serving = newSlotLeft ? s.live : s.target;
    const connection = connectionOf(db, left);
    return [{ service: s.service, left, serving, connection, servingDatabase: connectionOf(db, serving).database, mark: markStatement(connection.engine) }];
  });
  // Services keeping files (issue 18): their hosts' files-left steps run before this one; their output goes in the same report.
  const files = services.filter((s) => stage.services[s.service]?.files).map((s) => ({ service: s.service, live: s.live, target: s.target, hosts: [...s.hosts] }));
  if (list.length === 0 && files.length === 0) return undefined;
  return { kind: 'report-changes', action, newSlotLeft, services: list, ...(files.length > 0 ? { files } : {}), title: `report what users wrote to the slot${newSlotLeft ? ' the automatic rollback' : ''} left (${[...list.map((s) => `${s.service}: ${s.connection.database}`), ...files.map((f) => `${f.service}: files`)].join(', ')})` };
}

/** The phase that holds it (empty when no service leaves data behind). */
export function reportPhase(report: ReportAction | undefined): Phase {
  return { name: 'report', title: 'Report what was written to the slot traffic left', items: report ? [{ target: 'local', actions: [report] }] : [] };
}
