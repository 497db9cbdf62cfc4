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
  private closed = false;
  constructor(private readonly connector: Connector = (h) => SshTransport.connect(h)) {}

  async connectAll(hosts: readonly Host[], limit: number): Promise<void> {
    await allLimited(hosts.filter((h) => !this.open.has(h.name)), limit, async (h) => {
      const t = await this.connector(h);
      // A connection that completes after the pool was closed (another host failed first) is closed at once.
      if (this.closed) await t.close();
      else this.open.set(h.name, t);
    });
  }

  get(host: string): Transport {
    const t = this.open.get(host);
    if (!t) throw new Error(`internal: no connection to host ${host}; connectAll() first`);
    return t;
  }

  find(host: string): Transport | undefined {
    return this.open.get(host);
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(all.map((t) => t.close()));
  }
}
