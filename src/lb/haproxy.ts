/*
 * One load balancer's runtime API, in the words the switch and drain logic needs. Every method is one
 * command built by a pure function below (tested by exact string), sent by RuntimeClient and judged by
 * replies.ts, so a refusal always becomes a LoadBalancerError carrying HAProxy's own sentence.
 */
import type { LoadBalancer } from '../config/model.js';
import { describeError, LoadBalancerError } from '../errors.js';
import { addMapCommand, type MapEntry, parseShowMap, setMapCommand, showMapCommand } from './map.js';
import { expectEmptyReply, expectOutput, recogniseReply } from './replies.js';
import { type Connect, localSocket, RuntimeClient, runtimeWord } from './runtime-client.js';
import { parseShowStat, type StatRow } from './stat.js';

export type ServerHealth = 'up' | 'down';
export type ServerState = 'ready' | 'drain' | 'maint';

const serverRef = (backend: string, server: string): string =>
  `${runtimeWord('backend', backend)}/${runtimeWord('server', server)}`;

export const SHOW_STAT = 'show stat';
export const SHOW_INFO = 'show info';
/** admin, operator or user: what the socket's `level` lets this connection do (switching needs admin). */
export const SHOW_CLI_LEVEL = 'show cli level';

export function serverHealthCommand(backend: string, server: string, health: ServerHealth): string {
  return `set server ${serverRef(backend, server)} health ${health}`;
}

export function serverStateCommand(backend: string, server: string, state: ServerState): string {
  return `set server ${serverRef(backend, server)} state ${state}`;
}

export function shutdownSessionsCommand(backend: string, server: string): string {
  return `shutdown sessions server ${serverRef(backend, server)}`;
}

/** `show info` prints "Name: value" lines. */
export function parseShowInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) info[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return info;
}

export class Haproxy {
  constructor(private readonly client: RuntimeClient) {}

  /** The load balancer's socket on this machine; `connect` replaces it, e.g. with an SSH forward. */
  static forLoadBalancer(lb: LoadBalancer, connect: Connect = localSocket(lb.socket)): Haproxy {
    return new Haproxy(new RuntimeClient({ name: lb.name, connect, timeoutMs: lb.timeoutMs }));
  }

  get name(): string {
    return this.client.name;
  }

  async showStat(): Promise<StatRow[]> {
    return this.parsed(SHOW_STAT, parseShowStat);
  }

  async showMap(file: string): Promise<MapEntry[]> {
    return this.parsed(showMapCommand(file), parseShowMap);
  }

  async info(): Promise<Record<string, string>> {
    return this.parsed(SHOW_INFO, parseShowInfo);
  }

  async cliLevel(): Promise<string> {
    return this.parsed(SHOW_CLI_LEVEL, (text) => text.trim());
  }

  /**
   * Points `key` at `value`. A key the map does not have yet (a service added since the map file was
   * written) is added instead: `set map` only changes existing entries.
   */
  async setMap(file: string, key: string, value: string): Promise<'updated' | 'added'> {
    const set = setMapCommand(file, key, value);
    const reply = await this.client.command(set);
    if (recogniseReply(reply) !== 'entryNotFound') {
      expectEmptyReply(this.name, set, reply);
      return 'updated';
    }
    await this.change(addMapCommand(file, key, value));
    return 'added';
  }

  async serverHealth(backend: string, server: string, health: ServerHealth): Promise<void> {
    await this.change(serverHealthCommand(backend, server, health));
  }

  async serverState(backend: string, server: string, state: ServerState): Promise<void> {
    await this.change(serverStateCommand(backend, server, state));
  }

  async shutdownSessions(backend: string, server: string): Promise<void> {
    await this.change(shutdownSessionsCommand(backend, server));
  }

  /**
   * Sessions still on a backend: scur + qcur of each of its servers, plus the requests queued on the
   * backend itself (qcur of its BACKEND line), which will reach one of those servers. Zero means drained.
   */
  async sessions(backend: string): Promise<number> {
    const rows = (await this.showStat()).filter((row) => row.proxy === backend);
    if (rows.length === 0) {
      throw new LoadBalancerError(this.name, `backend ${backend} is not in show stat`,
        { hint: 'the running HAProxy configuration differs from the profile: re-render it and reload HAProxy' });
    }
    return rows.reduce((sum, row) => {
      if (row.type === 'server') return sum + row.scur + row.qcur;
      if (row.type === 'backend') return sum + row.qcur;
      return sum;
    }, 0);
  }

  private async change(command: string): Promise<void> {
    expectEmptyReply(this.name, command, await this.client.command(command));
  }

  private async parsed<T>(command: string, parse: (text: string) => T): Promise<T> {
    const text = expectOutput(this.name, command, await this.client.command(command));
    try {
      return parse(text);
    } catch (err) {
      throw new LoadBalancerError(this.name, `cannot read the reply to "${command}": ${describeError(err)}`, { cause: err });
    }
  }
}
