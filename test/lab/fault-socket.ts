/*
 * A UNIX socket in front of an HAProxy runtime socket that passes every command through except those
 * matching a pattern, which it refuses the way HAProxy refuses ("Permission denied"). It makes a load
 * balancer fail in the middle of a switch while everything it is asked before (show map, show stat)
 * still works. One command per connection, like HAProxy's non-interactive mode.
 */
import { createConnection, createServer, type Server } from 'node:net';

export interface FaultSocket { path: string; refused: string[]; close(): Promise<void> }

export async function startFaultSocket(path: string, target: string, refuse: RegExp): Promise<FaultSocket> {
  const refused: string[] = [];
  const server: Server = createServer((client) => {
    let line = '';
    client.on('data', (d: Buffer) => {
      line += d.toString();
      if (!line.includes('\n')) return;
      const command = line.split('\n')[0]!;
      if (refuse.test(command)) {
        refused.push(command);
        client.end('Permission denied\n\n');
        return;
      }
      const upstream = createConnection(target);
      upstream.on('connect', () => upstream.write(line));
      upstream.pipe(client);
      upstream.on('error', () => client.destroy());
    });
    client.on('error', () => {});
  });
  await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(path, ok); });
  return { path, refused, close: () => new Promise((ok) => server.close(() => ok())) };
}
