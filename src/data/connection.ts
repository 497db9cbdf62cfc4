import type { DatabaseConnection } from '../config/model.js';

/** A connection as people read it; never with the password. */
export const describeConnection = (c: DatabaseConnection) => `${c.engine}://${c.user}@${c.host}:${c.port}/${c.database}`;
