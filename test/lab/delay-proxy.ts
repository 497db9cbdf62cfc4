/*
 * A TCP proxy that puts network distance between the orchestrator and a lab host's sshd: every chunk
 * is forwarded rttMs/2 after it arrived, in each direction, so a request and its answer take rttMs
 * more than on loopback. This machine's kernel has no netem (tc qdisc ... delay), hence this.
 *
 *   node dist/test/lab/delay-proxy.js <rttMs> <listenAddress>:<listenPort>=<targetAddress>:<targetPort> ...
 *
 * One process serves every host of a lab (one listener per pair); the lab starts it and stops it by
 * pid. Chunks keep their order: each direction forwards them through one queue with the same delay.
 * Bandwidth is not limited: the delay is the only difference from loopback.
 */
import { createServer, connect, type Socket } from 'node:net';

function delayed(from: Socket, to: Socket, delayMs: number): void {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => { if (!to.destroyed) to.write(chunk); }, delayMs);
  });
  // The end and a reset travel the same distance as the data before them.
  from.on('end', () => setTimeout(() => to.end(), delayMs));
  from.on('error', () => setTimeout(() => to.destroy(), delayMs));
  from.on('close', () => setTimeout(() => to.destroy(), delayMs + 1));
}

export function startDelayProxy(rttMs: number, pairs: Array<{ listen: { address: string; port: number }; target: { address: string; port: number } }>): Promise<void> {
  const half = rttMs / 2;
  return Promise.all(pairs.map(({ listen, target }) => new Promise<void>((resolve, reject) => {
    const server = createServer({ noDelay: true }, (client) => {
      client.setNoDelay(true);
      const upstream = connect({ host: target.address, port: target.port, noDelay: true });
      delayed(client, upstream, half);
      delayed(upstream, client, half);
    });
    server.once('error', reject);
    server.listen(listen.port, listen.address, () => resolve());
  }))).then(() => undefined);
}

function parseEndpoint(text: string): { address: string; port: number } {
  const at = text.lastIndexOf(':');
  const port = Number(text.slice(at + 1));
  if (at < 1 || !Number.isInteger(port)) throw new Error(`not address:port: ${text}`);
  return { address: text.slice(0, at), port };
}

if (process.argv[1]?.endsWith('delay-proxy.js')) {
  // --lab=<dir> only marks the process as its lab's (test/lab/orphans.ts finds it by its command line).
  const [rtt, ...specs] = process.argv.slice(2).filter((arg) => !arg.startsWith('--lab='));
  const rttMs = Number(rtt);
  if (!Number.isFinite(rttMs) || rttMs < 0 || specs.length === 0) {
    process.stderr.write('usage: delay-proxy.js <rttMs> <listen>=<target> ...\n');
    process.exit(2);
  }
  const pairs = specs.map((spec) => {
    const [listen, target] = spec.split('=');
    return { listen: parseEndpoint(listen ?? ''), target: parseEndpoint(target ?? '') };
  });
  startDelayProxy(rttMs, pairs).then(() => process.stdout.write(`delay-proxy: ${pairs.length} listeners, rtt ${rttMs} ms\n`), (err: unknown) => {
    process.stderr.write(`delay-proxy: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
