/*
 * Opens the Balancer of every load balancer of a stage: through a local UNIX socket, or, when the
 * profile names a host, through that host's SSH connection (no runtime API port is ever exposed).
 */
import type { LoadBalancer, Stage } from '../config/model.js';
import { quote } from '../commands/shell.js';
import { run, type Transport } from '../transport/transport.js';
import { LocalTransport } from '../transport/local.js';
import type { Balancer } from './balancer.js';
import { addMapCommand, parseShowMap, showMapCommand } from './map.js';
import { expectEmptyReply, expectOutput, recogniseReply } from './replies.js';
import { localSocket, RuntimeClient } from './runtime-client.js';
import { parseShowStat } from './stat.js';

class HaproxyBalancer implements Balancer {
  readonly name: string;
  constructor(private readonly lb: LoadBalancer, private readonly client: RuntimeClient, private readonly files: Transport) {
    this.name = lb.name;
  }

  async command(line: string): Promise<string> {
    const reply = await this.client.command(line);
    if (/^show /.test(line)) return expectOutput(this.name, line, reply);
    // A map entry that does not exist yet (first promotion of a new service) is added instead.
    const setMap = /^set map (\S+) (\S+) (\S+)$/.exec(line);
    if (setMap && recogniseReply(reply) === 'entryNotFound') {
      const add = addMapCommand(setMap[1]!, setMap[2]!, setMap[3]!);
      expectEmptyReply(this.name, add, await this.client.command(add));
      return '';
    }
    expectEmptyReply(this.name, line, reply);
    return reply;
  }

  async readMap(file: string): Promise<Map<string, string>> {
    const text = await this.command(showMapCommand(file));
    return new Map(parseShowMap(text).map((e) => [e.key, e.value]));
  }

  async sessions(backends: readonly string[]): Promise<number> {
    const rows = parseShowStat(await this.command('show stat'));
    return rows.filter((r) => r.type === 'backend' && backends.includes(r.proxy)).reduce((n, r) => n + r.scur + r.qcur, 0);
  }

  async writeMapFile(file: string, content: string): Promise<void> {
    // Written beside the target and renamed over it: HAProxy never reads half a file.
    const tmp = `${file}.updateserver-tmp`;
    await run(this.files, `cat > ${quote(tmp)} && mv -f ${quote(tmp)} ${quote(file)}`, { input: content, what: `rewriting map file ${file} on ${this.lb.host ?? 'this machine'}` });
  }

  async close(): Promise<void> {}
}

export async function openBalancers(stage: Stage, transportFor: (host: string) => Transport): Promise<Balancer[]> {
  const local = new LocalTransport();
  return Object.values(stage.loadBalancers).map((lb) => {
    const files = lb.host === undefined ? local : transportFor(lb.host);
    const connect = lb.host === undefined ? localSocket(lb.socket) : () => files.openUnixSocket(lb.socket);
    return new HaproxyBalancer(lb, new RuntimeClient({ name: lb.name, connect, timeoutMs: lb.timeoutMs }), files);
  });
}

export async function closeBalancers(balancers: readonly Balancer[]): Promise<void> {
  await Promise.all(balancers.map((b) => b.close()));
}
