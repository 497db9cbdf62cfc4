import type { DatabaseConnection } from '../config/model.js';

/** A connection as people read it; never with the password. */
export const describeConnection = (c: DatabaseConnection) => `${c.engine}://${c.user}@${c.host}:${c.port}/${c.database}`;

/** Quotes an identifier; names are validated to [a-z0-9_] anyway. */
export function ident(engine: DatabaseConnection['engine'], name: string): string {
  return engine === 'postgres' ? `"${name.replace(/"/g, '""')}"` : `\`${name.replace(/`/g, '``')}\``;
}

/** One server as the orchestrator reaches it: the same host string and port. */
export const sameServer = (x: DatabaseConnection, y: DatabaseConnection) => x.engine === y.engine && x.host === y.host && x.port === y.port;

/** The same database of the same server. */
export const sameDatabase = (x: DatabaseConnection, y: DatabaseConnection) => sameServer(x, y) && x.database === y.database;
