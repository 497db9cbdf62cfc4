/*
 * A command that dies holding the stage: it takes the lock as a running command does, begins a
 * journal, announces a step, prints its lock and kills itself with SIGKILL. Run by the state contract
 * to leave a real crashed holder behind (a dead pid; for PostgreSQL, a session the server ends).
 * Usage: node state-child.js <store> <stage>
 */
import { openStore, samplePlan } from './state-stores.js';

const [store, stage] = process.argv.slice(2) as [string, string];
const state = openStore(store);
const held = await state.locks.acquire(stage, { heartbeat: true, message: 'updateserver beta (child)' });
const journal = await state.journals.begin(samplePlan(stage));
await journal.step('copy', 'beta1', 'copy the release to beta1', 'begin');
process.stdout.write(`${JSON.stringify(held.info)}\n`, () => process.kill(process.pid, 'SIGKILL'));
