/*
 * Wrappers around a run's real clients, for the recording test (test/lab/recorder.ts): every command
 * sent to a host, every change sent to a load balancer, every statement sent to a database and every
 * local program run is seen on its way to the real implementation. Connections are wrapped where a
 * run opens them (StageLink); database sessions and local programs are opened deep inside the data
 * code, so the run's wrappers travel with its async context instead of through every signature.
 * Inert (one lookup) when no test asks for it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Balancer } from '../lb/balancer.js';
import type { Transport } from '../transport/transport.js';
import type { Db } from '../data/db.js';

export interface Instrument {
  transport?: (t: Transport) => Transport;
  balancer?: (b: Balancer) => Balancer;
  /** A database session as it is opened, with the database it is on. */
  db?: (db: Db, readOnly: boolean) => Db;
  /** A program run on this machine (pg_dump, pg_restore, mysqldump, mysql, rsync): its argv, before it starts. */
  local?: (argv: readonly string[]) => void;
}

const current = new AsyncLocalStorage<Instrument>();

export function withInstrument<T>(instrument: Instrument | undefined, fn: () => Promise<T>): Promise<T> {
  return instrument ? current.run(instrument, fn) : fn();
}

export function currentInstrument(): Instrument | undefined {
  return current.getStore();
}
