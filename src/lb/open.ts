/*
 * Opens the Balancer of every load balancer of a stage: through a local UNIX socket, or, when the
 * profile names a host, through that host's SSH connection (no runtime API port is ever exposed).
 */
import type { LoadBalancer, Stage } from '../config/model.js';
import { quote } from '../commands/shell.js';
import { run, type Transport } from '../transport/transport.js';
import { LocalTransport } from '../transport/local.js';
import type { Balancer } from './balancer.js';
import { Haproxy } from './haproxy.js';
import type { StatRow } from './stat.js';
import { localSocket } from './runtime-client.js';

class HaproxyBalancer implements Balancer {
  readonly name: string;
  constructor(private readonly lb: LoadBalancer, private readonly haproxy: Haproxy, private readonly files: Transport) {
    this.name = lb.name;
  }

  async setMap(file: string, key: string, value: string): Promise<void> {
    await this.haproxy.setMap(file, key, value);
  }

  serverHealth(backend: string, server: string, health: 'up' | 'down'): Promise<void> {
    return this.haproxy.serverHealth(backend, server, health);
  }

  shutdownSessions(backend: string, server: string): Promise<void> {
    return this.haproxy.shutdownSessions(backend, server);
  }

  async readMap(file: string): Promise<Map<string, string>> {
    const entries = await this.haproxy.showMap(file);
    // HAProxy answers a lookup with the first entry of a key, so the first one is the one in force.
    const map = new Map<string, string>();
    for (const e of entries) if (!map.has(e.key)) map.set(e.key, e.value);
    return map;
  }

  async sessions(backends: readonly string[]): Promise<number> {
    const counts = await Promise.all(backends.map((b) => this.haproxy.sessions(b)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async persistMap(file: string): Promise<void> {
    const content = [...(await this.readMap(file))].map(([k, v]) => `${k} ${v}\n`).join('');
    // Written beside the target and renamed over it: HAProxy never reads half a file.
    const tmp = `${file}.updateserver-tmp`;
    await run(this.files, `cat > ${quote(tmp)} && mv -f ${quote(tmp)} ${quote(file)}`, { input: content, what: `rewriting map file ${file} on ${this.lb.host ?? 'this machine'}` });
  }

  stat(): Promise<StatRow[]> {
    return this.haproxy.showStat();
  }

  async close(): Promise<void> {}
}

export async function openBalancers(stage: Stage, transportFor: (host: string) => Transport): Promise<Balancer[]> {
  const local = new LocalTransport();
  return Object.values(stage.loadBalancers).map((lb) => {
    const files = lb.host === undefined ? local : transportFor(lb.host);
    const connect = lb.host === undefined ? localSocket(lb.socket) : () => files.openUnixSocket(lb.socket);
    return new HaproxyBalancer(lb, Haproxy.forLoadBalancer(lb, connect), files);
  });
}

export async function closeBalancers(balancers: readonly Balancer[]): Promise<void> {
  await Promise.all(balancers.map((b) => b.close()));
}
