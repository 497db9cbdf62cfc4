import type { Stage } from '../config/model.js';
import { ConfigError, describeError } from '../errors.js';
import type { Balancer } from '../lb/balancer.js';
import { closeBalancers, openBalancers } from '../lb/open.js';
import type { Logger } from '../log.js';
import { TransportPool } from '../transport/pool.js';
import { ExecTunnel, type StreamingTransport } from '../transport/tunnel.js';
import type { Transport } from '../transport/transport.js';
import { SshTransport } from '../transport/ssh.js';

/** A wrapped transport keeps the real one's `stream` (rsync's tunnel needs it). See run/instrument.ts. */
export type { Instrument } from '../run/instrument.js';
import type { Instrument } from '../run/instrument.js';

/** Everything opened for one stage during a run: one SSH connection per host, the load balancers. Closed in finally. */
export class StageLink {
  readonly pool: TransportPool;
  balancers: Balancer[] = [];
  tunnel: ExecTunnel | undefined;
  constructor(readonly stage: Stage, private readonly instrument: Instrument = {}) {
    const wrap = instrument.transport;
    // A wrapped transport keeps the real one's session start-up, which the pool bounds by `parallel`.
    this.pool = new TransportPool(wrap ? async (h) => {
      const real = await SshTransport.connect(h, { sessions: 'later' });
      return Object.assign(wrap(real), { startSessions: () => real.startSessions() });
    } : undefined);
  }

  /** rsync through this stage's SSH connections (hosts without a streaming connection fall back to OpenSSH). */
  async openTunnel(): Promise<ExecTunnel> {
    this.tunnel ??= await ExecTunnel.open((h) => {
      const t = this.pool.find(h) as (Transport & Partial<StreamingTransport>) | undefined;
      return t?.stream ? (t as unknown as StreamingTransport) : undefined;
    });
    return this.tunnel;
  }

  async open(hosts: readonly string[]): Promise<void> {
    await this.pool.connectAll(hosts.map((h) => this.stage.hosts[h]!), this.stage.parallel);
    const wrap = this.instrument.balancer;
    this.balancers = (await openBalancers(this.stage, (h) => this.pool.get(h))).map((b) => (wrap ? wrap(b) : b));
  }

  balancerMap(): Record<string, Balancer> {
    return Object.fromEntries(this.balancers.map((b) => [b.name, b]));
  }

  async close(logger: Logger): Promise<void> {
    await closeBalancers(this.balancers).catch((err) => logger.warn(`closing load balancer connections: ${describeError(err)}`));
    await this.tunnel?.close().catch(() => {});
    const started = Date.now();
    await this.pool.closeAll();
    logger.debug(`connections to ${this.stage.name}'s hosts closed in ${Date.now() - started} ms`);
  }
}

export function selectServices(stage: Stage, wanted: readonly string[] | undefined): string[] {
  const all = Object.keys(stage.services);
  if (!wanted || wanted.length === 0) return all;
  const unknown = wanted.filter((s) => !all.includes(s));
  if (unknown.length > 0) {
    // Bad input, refused before anything is opened: every command selects its services first.
    throw new ConfigError([{ file: 'command line', path: '--service', message: `unknown service ${unknown.map((s) => JSON.stringify(s)).join(', ')} in stage ${stage.name} (services: ${all.join(', ')})` }], `see ${stage.file}`);
  }
  return [...new Set(wanted)];
}

/** Hosts a run needs: those of the services it touches and those of remote load balancers. */
export function hostsUsed(stage: Stage, services: readonly string[]): string[] {
  const hosts = new Set<string>();
  for (const s of services) for (const h of stage.services[s]!.hosts) hosts.add(h);
  for (const lb of Object.values(stage.loadBalancers)) if (lb.host) hosts.add(lb.host);
  return [...hosts];
}
