import type { Host } from '../config/model.js';
import { allLimited } from './runner.js';
import { SshTransport } from './ssh.js';
import type { Transport } from './transport.js';

export type Connector = (host: Host) => Promise<Transport>;

/**
 * One connection per host for the whole run. Opening every connection first means an unreachable
 * host or a refused host key stops the run before anything has changed anywhere.
 */
export class TransportPool {
  private readonly open = new Map<string, Transport>();
  constructor(private readonly connector: Connector = (h) => SshTransport.connect(h)) {}

  async connectAll(hosts: readonly Host[], limit: number): Promise<void> {
    await allLimited(hosts.filter((h) => !this.open.has(h.name)), limit, async (h) => {
      this.open.set(h.name, await this.connector(h));
    });
  }

  get(host: string): Transport {
    const t = this.open.get(host);
    if (!t) throw new Error(`internal: no connection to host ${host}; connectAll() first`);
    return t;
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(all.map((t) => t.close()));
  }
}
