/*
 * Lets rsync use the SSH connections a run already holds: rsync's "remote shell" is a few lines of bash
 * (tunnel-client.ts) that connect back to this process over loopback TCP; the remote side of rsync
 * then runs over the host's ssh2 connection. No new handshake per transfer and one host-key policy
 * for everything; without a tunnel (or for a host without an SSH connection) rsync falls back to
 * OpenSSH with the same strict options.
 *
 * Why bash and TCP rather than a Node client on a UNIX socket: rsync starts its remote shell for every
 * transfer, and a Node process costs 40 ms of CPU to start on an idle machine and several hundred on a
 * loaded 2-core one (measured: bench/README.md, "Start-up"); bash's /dev/tcp connects in a few.
 * The port is on 127.0.0.1 only, and a connection must first present a random token that reaches the
 * client through rsync's environment (never its argv, which `ps` shows to every user). The remote
 * command's stderr and exit status go through files in a private directory (0700), read by the
 * client once the data stream has ended.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { TUNNEL_CLIENT, TUNNEL_CLIENT_ENV, TUNNEL_ENV } from './tunnel-client.js';

export interface StreamingTransport {
  /** Runs a command with its stdin/stdout/stderr as streams; resolves the exit status on close. */
  stream(command: string): Promise<{ channel: Duplex & { stderr: NodeJS.ReadableStream }; exit: Promise<number>; lost?: () => string | undefined }>;
}

/**
 * A request line: token, request id, role, host, command; tab-separated. Each request uses two
 * connections: `out` carries the command and its output, `in` the command's stdin, so that the
 * end of rsync's input reaches the remote command (bash cannot half-close a socket, only close it).
 */
const REQUEST = /^([0-9a-f]{64})\t([0-9A-Za-z.]{1,40})\t(in|out)\t([^\t]+)\t([^\n]*)$/;
const MAX_REQUEST = 64 * 1024;
/** How long one half of a request waits for the other before both are dropped. */
const PAIRING_MS = 30_000;

type Channel = Duplex & { stderr: NodeJS.ReadableStream };
interface Pending {
  channel: Promise<Channel | undefined>;
  open(c: Channel | undefined): void;
  timer: NodeJS.Timeout;
  /** The `in` connection, once it has come. */
  input?: Socket;
  /** The command has exited: its input has nowhere to go any more. */
  exited?: boolean;
}

export class ExecTunnel {
  private constructor(private readonly server: Server, private readonly sockets: Set<Socket>, private readonly dir: string, private readonly port: number, private readonly token: string) {}

  static async open(resolve: (host: string) => StreamingTransport | undefined): Promise<ExecTunnel> {
    // mkdtemp creates the directory 0700: the result files are this user's alone.
    const dir = await mkdtemp(join(tmpdir(), 'updateserver-tunnel-'));
    const token = randomBytes(32).toString('hex');
    const pending = new Map<string, Pending>();
    const sockets = new Set<Socket>();
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      serve(socket, token, dir, pending, resolve);
    });
    await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(0, '127.0.0.1', ok); });
    server.unref();
    return new ExecTunnel(server, sockets, dir, (server.address() as AddressInfo).port, token);
  }

  /** The environment rsync needs to run with for its remote shell (commands/relay.ts TUNNEL_RSH) to reach this tunnel. */
  env(): NodeJS.ProcessEnv {
    return { ...process.env, [TUNNEL_ENV]: `${this.port} ${this.token} ${this.dir}`, [TUNNEL_CLIENT_ENV]: TUNNEL_CLIENT };
  }

  async close(): Promise<void> {
    // A transfer still running when the run ends (it failed elsewhere) is cut, not waited for.
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

function serve(socket: Socket, token: string, dir: string, pending: Map<string, Pending>, resolve: (host: string) => StreamingTransport | undefined): void {
  socket.on('error', () => {});
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > MAX_REQUEST) socket.destroy();
      return;
    }
    socket.off('data', onData);
    socket.pause();
    const m = REQUEST.exec(head.subarray(0, nl).toString());
    // Anything but a request with the right token is dropped without a word.
    if (!m || !timingSafeEqual(Buffer.from(m[1]!), Buffer.from(token))) { socket.destroy(); return; }
    const [, , id, role, host, command] = m as unknown as [string, string, string, 'in' | 'out', string, string];
    const request = pairOf(pending, id);
    const rest = head.subarray(nl + 1);
    if (role === 'in') void feed(socket, rest, request);
    else void relay(socket, join(dir, id), host, command, request, resolve);
  };
  socket.on('data', onData);
}

/** The meeting point of a request's two connections, whichever comes first. */
function pairOf(pending: Map<string, Pending>, id: string): Pending {
  const found = pending.get(id);
  if (found) {
    pending.delete(id);
    clearTimeout(found.timer);
    return found;
  }
  let open!: (c: Channel | undefined) => void;
  const channel = new Promise<Channel | undefined>((r) => { open = r; });
  const timer = setTimeout(() => { pending.delete(id); open(undefined); }, PAIRING_MS);
  timer.unref();
  const entry: Pending = { channel, open, timer };
  pending.set(id, entry);
  return entry;
}

/** The `in` connection: everything it brings goes to the command's stdin, and its end ends that stdin. */
async function feed(socket: Socket, rest: Buffer, request: Pending): Promise<void> {
  const channel = await request.channel;
  if (!channel || request.exited) { socket.destroy(); return; }
  request.input = socket;
  // A channel that fails to take input (the command is gone) ends the input connection too.
  channel.on('error', () => socket.destroy());
  if (rest.length > 0) channel.write(rest);
  socket.pipe(channel);
  socket.on('error', () => channel.end());
  // Half-open sockets are allowed (the output side needs that); this one carries nothing back.
  socket.on('end', () => socket.end());
  socket.resume();
}

async function relay(socket: Socket, results: string, host: string, command: string, request: Pending, resolve: (host: string) => StreamingTransport | undefined): Promise<void> {
  // Written before the data stream ends: the client reads them as soon as it has.
  const finish = async (code: number, stderr: string) => {
    // The command may have exited without reading all its input (rsync's receiver failing on a full
    // disk): the client's stdin relay must not stay blocked on it, or rsync waits for ever.
    request.exited = true;
    request.input?.destroy();
    await writeFile(`${results}.err`, stderr).catch(() => {});
    await writeFile(`${results}.status`, `${code}\n`).catch(() => {});
    socket.end();
  };
  const transport = resolve(host);
  if (!transport) {
    request.open(undefined);
    return finish(255, `updateserver has no SSH connection to ${host}\n`);
  }
  try {
    const { channel, exit, lost } = await transport.stream(command);
    const stderr: Buffer[] = [];
    channel.pipe(socket, { end: false });
    channel.stderr.on('data', (d: Buffer) => stderr.push(Buffer.from(d)));
    request.open(channel);
    const code = await exit;
    // A command cut off by a lost connection says so, naming the host, as one that could not start does.
    const why = code === 0 ? undefined : lost?.();
    await finish(code, `${Buffer.concat(stderr).toString()}${why ? `updateserver tunnel: ${why}\n` : ''}`);
  } catch (err) {
    request.open(undefined);
    await finish(255, `updateserver tunnel: ${(err as Error).message}\n`);
  }
}
