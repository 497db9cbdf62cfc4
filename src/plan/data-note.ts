/*
 * One line of the plan per service with a database: what the idle slot's database will be and where its
 * pending migrations run. A migration runs in the first stage whose promotion finds it missing from its
 * copy; the stages after it copy the result (docs/profiles.md, "Where migrations run").
 */
import type { Service, SlotName, Stage } from '../config/model.js';
import type { DataFacts } from './build.js';

const versions = (pending: DataFacts['pending']) => pending.map((m) => m.version).join(', ');

export function describeData(stage: Stage, service: Service, target: SlotName, data: DataFacts): string {
  const db = service.database!;
  const idle = db.names[target];
  const version = `version ${data.sourceVersion ?? 'none'}`;
  const runs = data.pending.length === 0 ? 'no migration is pending' : `migrations ${versions(data.pending)} run in it`;
  if (db.strategy === 'shared') {
    return `shared: both slots use ${idle} (${version}); ${runs} while the live slot serves from it (each must suit the old code too)`;
  }
  if (data.source && db.strategy === 'copy-self') {
    return `copy-self: ${idle} becomes a copy of this stage's live database ${data.source.database} (${version}), made while writes are refused; ${runs}, in the copy`;
  }
  if (data.source) {
    const from = data.sourceSlot?.stage ?? stage.from ?? 'the previous stage';
    const first = data.pending.length === 0 ? ''
      : `; ${from}'s live database does not have ${data.pending.length > 1 ? 'them' : 'it'}, so ${stage.name} runs ${data.pending.length > 1 ? 'them' : 'it'} first (${from} never did; promote ${from} first to rehearse ${data.pending.length > 1 ? 'them' : 'it'} there)`;
    return `copy: ${idle} becomes a copy of ${from}'s live database ${data.source.database} (${data.sourceSlot ? `slot ${data.sourceSlot.slot}, ` : ''}${version}); ${runs}, in the copy${first}`;
  }
  if (db.strategy === 'copy-self') {
    return `copy-self: the live slot has no database yet, so ${idle} is kept as it is (created empty if missing); ${runs}`;
  }
  // The first stage: nothing to copy from, so each slot keeps a database of its own.
  if (stage.from !== undefined) return `slot ${target} keeps its database ${idle} (${version}); ${runs}, in place`;
  return `first stage: slot ${target} keeps its own database ${idle} (created empty at its first promotion; nothing is copied from the other slot, so rows written while it served are not in this one; ${version}); ${runs}, in place`;
}
