/*
 * Lets rsync use the SSH connections a run already holds (see tunnel-client.ts): a UNIX socket in a
 * private directory, one request per rsync, the remote command run over the host's ssh2 connection.
 * No new handshake per transfer and one host-key policy for everything; without a tunnel (or for a
 * host without an SSH connection) rsync falls back to OpenSSH with the same strict options.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';

export interface StreamingTransport {
  /** Runs a command with its stdin/stdout/stderr as streams; resolves the exit status on close. */
  stream(command: string): Promise<{ channel: Duplex & { stderr: NodeJS.ReadableStream }; exit: Promise<number> }>;
}

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'tunnel-client.js');

function frame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export class ExecTunnel {
  private constructor(private readonly server: Server, private readonly dir: string, readonly socket: string) {}

  static async open(resolve: (host: string) => StreamingTransport | undefined): Promise<ExecTunnel> {
    const dir = await mkdtemp(join(tmpdir(), 'updateserver-tunnel-'));
    const socketPath = join(dir, 's');
    const server = createServer({ allowHalfOpen: true }, (socket) => { void serve(socket, resolve); });
    await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(socketPath, ok); });
    server.unref();
    return new ExecTunnel(server, dir, socketPath);
  }

  /** The -e argument for rsync. */
  rsh(): string {
    return `${process.execPath} ${CLIENT} ${this.socket}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((ok) => this.server.close(() => ok()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function serve(socket: Socket, resolve: (host: string) => StreamingTransport | undefined): Promise<void> {
  let head = Buffer.alloc(0);
  const onData = async (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) return;
    socket.off('data', listener);
    socket.pause();
    const rest = head.subarray(nl + 1);
    const fail = (msg: string) => { socket.write(frame(2, Buffer.from(`${msg}\n`))); socket.end(frame(3, Buffer.from([0, 0, 0, 255]))); };
    let request: { host: string; command: string };
    try { request = JSON.parse(head.subarray(0, nl).toString()) as typeof request; } catch { return fail('bad request'); }
    const transport = resolve(request.host);
    if (!transport) return fail(`updateserver has no SSH connection to ${request.host}`);
    try {
      const { channel, exit } = await transport.stream(request.command);
      channel.on('data', (d: Buffer) => socket.write(frame(1, d)));
      channel.stderr.on('data', (d: Buffer) => socket.write(frame(2, Buffer.from(d))));
      if (rest.length > 0) channel.write(rest);
      socket.on('data', (d: Buffer) => channel.write(d));
      socket.on('end', () => channel.end());
      socket.on('error', () => channel.destroy());
      socket.resume();
      const code = await exit;
      const status = Buffer.alloc(4);
      status.writeInt32BE(code, 0);
      socket.end(frame(3, status));
    } catch (err) {
      fail(`updateserver tunnel: ${(err as Error).message}`);
    }
  };
  const listener = (chunk: Buffer) => { void onData(chunk); };
  socket.on('data', listener);
  socket.on('error', () => {});
}
