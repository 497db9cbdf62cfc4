/*
 * What a promotion needs from one load balancer, whatever the way it is reached (a local UNIX
 * socket, or the remote socket through the host's SSH connection).
 */
import type { StatRow } from './stat.js';

export interface Balancer {
  readonly name: string;
  /** Points a map key at a value (adding the entry when the map lacks it). */
  setMap(file: string, key: string, value: string): Promise<void>;
  serverHealth(backend: string, server: string, health: 'up' | 'down'): Promise<void>;
  /** Ends the sessions still open on a server (after a drain deadline). */
  shutdownSessions(backend: string, server: string): Promise<void>;
  /** The map's entries (key -> value). */
  readMap(file: string): Promise<Map<string, string>>;
  /** Current plus queued sessions summed over the given backends. */
  sessions(backends: readonly string[]): Promise<number>;
  /** Rewrites the map file from the runtime map, atomically, so a reload or restart keeps what is live now. */
  persistMap(file: string): Promise<void>;
  /** `show stat`: every frontend, backend and server with its state, weight and sessions (status display). */
  stat(): Promise<StatRow[]>;
  close(): Promise<void>;
}

export { slotOfBackend } from '../config/slot.js';
