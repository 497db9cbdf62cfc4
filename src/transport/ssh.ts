import { readFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import type { Host } from '../config/model.js';
import { HostError, HostKeyError } from '../errors.js';
import { hostLookupName, KnownHosts, type HostKeyVerdict } from './known-hosts.js';
import type { ExecOptions, ExecResult, Transport } from './transport.js';
import { RemoteSession, SessionUnavailable } from './remote-session.js';
import { killCommand, spareStreamCommand, spareStreamLine } from './session.js';

/**
 * ssh2 loads when the first connection is opened, not with the command: its ~25 ms of loading then
 * overlap the first TCP handshakes and the hosts' SSH banners instead of delaying them (issue 17).
 */
let ssh2: Promise<typeof import('ssh2')> | undefined;
const loadSsh2 = () => (ssh2 ??= import('ssh2').then((m) => ((m as { default?: typeof import('ssh2') }).default ?? m)));

let markConnecting: () => void = () => {};
/**
 * Settles once this process has begun its first TCP connection to a host. A run loads the code it needs
 * only after connecting (apply, plan, checks) from then on, so that loading it overlaps the handshakes
 * instead of delaying the first connection (issue 17: start-up to the first connection <= 150 ms).
 */
export const connecting = new Promise<void>((resolve) => { markConnecting = resolve; });

/** Output kept per stream; beyond this the start is dropped (the end is what explains a failure). */
const MAX_OUTPUT = 8 * 1024 * 1024;

function hostKeyError(host: Host, verdict: Exclude<HostKeyVerdict, { ok: true }>, file: string): HostKeyError {
  const name = hostLookupName(host.address, host.port);
  const offered = `${verdict.keyType} ${verdict.fingerprint}`;
  const scan = `ssh-keyscan -p ${host.port} ${host.address}`;
  switch (verdict.reason) {
    case 'unknown':
      return new HostKeyError(host.name, `unknown host key: ${name} is not in ${file}; it offered ${offered}. Nothing was run on it.`,
        verdict.fingerprint, `check that fingerprint with the host's administrator, then add the key: ${scan} >> ${file}`);
    case 'changed':
      return new HostKeyError(host.name, `HOST KEY CHANGED: ${name} offered ${offered}, which does not match ${file}:${verdict.line}. Someone may be intercepting the connection; nothing was run on it.`,
        verdict.fingerprint, `if the host was really reinstalled, confirm the new fingerprint out of band and replace line ${verdict.line} of ${file}`);
    case 'revoked':
      return new HostKeyError(host.name, `revoked host key: ${name} offered ${offered}, marked @revoked in ${file}:${verdict.line}. Nothing was run on it.`,
        verdict.fingerprint, 'the host must be given a new key');
  }
}

/**
 * One SSH connection to one host, opened once and reused for every step of a run.
 * The host key is checked against known_hosts before authentication completes; an unknown,
 * changed or revoked key ends the connection and nothing runs.
 */
export class SshTransport implements Transport {
  readonly host: string;
  /** Set once the connection is gone (dropped by the host or the network, or closed by us). */
  private lost: HostError | undefined;
  /** Operations waiting for ssh2 (a channel to open, a command to end): failed at once if the connection goes. */
  private readonly pending = new Set<(err: HostError) => void>();
  /**
   * Remote sessions (src/transport/session.ts): commands travel as messages to a bash started once,
   * so the login shell is paid once per host per run. Usually one; another opens only when commands
   * run on the host at the same moment. Off with UPDATESERVER_SESSIONS=0 (every command on a channel
   * of its own, as before), and off by itself when the host cannot run one.
   */
  private readonly sessions: RemoteSession[] = [];
  private sessionsOff = process.env.UPDATESERVER_SESSIONS === '0';
  /**
   * A channel opened at connect time whose shell waits for one command line: the first stream (the
   * rsync push) then does not wait for the login shell either, which started in the meantime.
   */
  private spare: Promise<ClientChannel | undefined> | undefined;
  private readonly spareEnded = new WeakSet<ClientChannel>();

  private constructor(private readonly client: Client, private readonly config: Host) {
    this.host = config.name;
    // ssh2 never calls back an exec whose channel was still opening when the connection died: without
    // this, such an operation waits for ever, and with nothing else to do Node exits (13) without a word.
    client.on('close', () => {
      this.lost ??= new HostError(this.host, `the SSH connection to ${config.address}:${config.port} was lost`, {
        hint: 'the host went away or the connection was cut (network, sshd restarted); live traffic was not touched unless said otherwise above; run again once the host answers',
      });
      for (const fail of [...this.pending]) fail(this.lost);
      this.pending.clear();
    });
  }

  /** Runs start() unless the connection is gone; fail is called if it goes before done() is. */
  private guard(fail: (err: HostError) => void, start: (done: () => void) => void): void {
    if (this.lost) return fail(this.lost);
    let settled = false;
    const onLost = (err: HostError) => { if (!settled) { settled = true; fail(err); } };
    this.pending.add(onLost);
    const done = () => { settled = true; this.pending.delete(onLost); };
    try {
      start(done);
    } catch (err) {
      // ssh2 throws "Not connected" when the socket is already gone.
      done();
      fail(new HostError(this.host, `cannot run command: ${(err as Error).message}`, { cause: err }));
    }
  }

  /**
   * @param opening.sessions 'now' (default): the remote session and the spare stream shell start their
   * login shells as soon as the connection is up; 'later': when startSessions() is called (the pool
   * does, at most `parallel` hosts at once: a login shell at work is work on the host).
   */
  static async connect(host: Host, opening: { sessions?: 'now' | 'later' } = {}): Promise<SshTransport> {
    const knownHosts = KnownHosts.load(host.knownHosts);
    const keyTypes = knownHosts.keyTypesFor(host.address, host.port);
    let rejection: HostKeyError | undefined;
    const options: ConnectConfig = {
      host: host.address,
      port: host.port,
      username: host.user,
      readyTimeout: host.connectTimeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier: (key: Buffer) => {
        const verdict = knownHosts.verify(host.address, host.port, key);
        if (verdict.ok) return true;
        rejection = hostKeyError(host, verdict, host.knownHosts);
        return false;
      },
    };
    // Offer only key types we can verify, so a host with several keys presents a listed one.
    if (keyTypes.length > 0) options.algorithms = { serverHostKey: keyTypes as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] };
    if (host.key !== undefined) {
      try {
        options.privateKey = await readFile(host.key);
      } catch (err) {
        throw new HostError(host.name, `cannot read private key ${host.key}: ${(err as Error).message}`, { cause: err, hint: 'set ssh.key (or hosts.<name>.key) in the profile to a readable private key, or remove it to use ssh-agent' });
      }
    } else if (process.env.SSH_AUTH_SOCK) {
      options.agent = process.env.SSH_AUTH_SOCK;
    } else {
      throw new HostError(host.name, 'no SSH key configured and no ssh-agent running (SSH_AUTH_SOCK is not set)', { hint: 'set ssh.key in the profile, or start ssh-agent and ssh-add your key' });
    }

    // The TCP connection is opened first; ssh2 takes it over once loaded (data waits in the socket).
    const sock = tcpConnect({ host: host.address, port: host.port });
    markConnecting();
    let sockError: Error | undefined;
    const onSockError = (err: Error) => { sockError ??= err; };
    sock.on('error', onSockError);
    const { Client } = await loadSsh2();
    sock.removeListener('error', onSockError);
    if (sockError || sock.destroyed) {
      sock.destroy();
      throw new HostError(host.name, `cannot connect to ${host.address}:${host.port}: ${sockError?.message ?? 'the connection was closed'}`, { cause: sockError });
    }
    options.sock = sock;
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.removeListener('ready', ready);
        client.end();
        if (rejection) return reject(rejection);
        const level = (err as Error & { level?: string }).level;
        const msg = level === 'client-authentication'
          ? `authentication as ${host.user} failed (key ${host.key ?? 'from ssh-agent'} not accepted)`
          : `cannot connect to ${host.address}:${host.port}: ${err.message}`;
        reject(new HostError(host.name, msg, { cause: err }));
      };
      // A peer that hangs up before the handshake ends gives 'close' without 'error'.
      const closed = () => fail(new Error('the connection was closed during the SSH handshake (is this an SSH server?)'));
      const ready = () => {
        client.removeListener('error', fail);
        client.removeListener('close', closed);
        client.on('error', () => { /* reported by the pending operation */ });
        resolve();
      };
      client.once('ready', ready);
      // on, not once: a failing handshake may report more than one error (the socket's, then the
      // protocol's), and an 'error' with no listener would end the process with a stack trace. fail()
      // settles once and ignores the rest.
      client.on('error', fail);
      client.once('close', closed);
      client.connect(options);
    });
    const transport = new SshTransport(client, host);
    // Both start their login shells now, while the caller reads load balancers and state.
    if (opening.sessions !== 'later') void transport.startSessions();
    return transport;
  }

  private sessionsStarting: Promise<void> | undefined;

  /**
   * Starts the remote session and the spare stream shell (once); settles when the session's loop
   * answers, i.e. when the host's login shell has done its work (or the session could not start: its
   * commands then get channels of their own). Never rejects.
   */
  startSessions(): Promise<void> {
    if (this.sessionsOff || this.lost) return Promise.resolve();
    this.sessionsStarting ??= (() => {
      const session = this.sessions.find((s) => !s.dead) ?? this.startSession();
      this.spare ??= this.openSpare();
      // A login shell that never finishes (a .bashrc waiting for input) does not hold the run here:
      // after the connect timeout the commands find out for themselves, each with its own timeout.
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.config.connectTimeoutMs); });
      return Promise.race([session.started, waited]).finally(() => clearTimeout(timer));
    })();
    return this.sessionsStarting;
  }

  private get where(): string { return `${this.config.address}:${this.config.port}`; }

  private startSession(): RemoteSession {
    const session = new RemoteSession(this.host, this.where, (pid) => this.killQuietly(pid), () => this.lost);
    this.sessions.push(session);
    session.opened = new Promise<void>((resolve) => this.guard((lost) => { session.fail(lost); resolve(); }, (done) => {
      this.client.exec(RemoteSession.command(session), (err, channel) => {
        done();
        if (err) session.fail(new SessionUnavailable(`cannot open a remote session: ${err.message}`));
        else session.attach(channel);
        resolve();
      });
    }));
    return session;
  }

  /** Kills a timed-out command's process group, on a channel of its own (the session is busy waiting for it). */
  private killQuietly(pid: number): void {
    this.execChannel(killCommand(pid), { timeoutMs: 30_000 }).catch(() => { /* the command may be gone already */ });
  }

  private openSpare(): Promise<ClientChannel | undefined> {
    return new Promise<ClientChannel | undefined>((resolve) => this.guard(() => resolve(undefined), (done) => {
      this.client.exec(spareStreamCommand(), (err, channel) => {
        done();
        if (err) return resolve(undefined);
        // A spare whose shell has already ended (killed, or the login shell failed) is not used: its
        // exit would never be heard again.
        const ended = () => { this.spareEnded.add(channel); };
        channel.once('exit', ended);
        channel.once('close', ended);
        resolve(channel);
      });
    }));
  }

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.sessionsOff || this.lost) return this.execChannel(command, options);
    return this.execInSession(command, options);
  }

  private async execInSession(command: string, options: ExecOptions): Promise<ExecResult> {
    const session = (this.sessions.find((s) => s.available) ?? this.startSession()).reserve();
    await session.opened;
    try {
      return await session.run(command, options.input, options.timeoutMs ?? this.config.commandTimeoutMs);
    } catch (err) {
      if (!(err instanceof SessionUnavailable)) throw err;
      // Nothing ran: the session's loop never started. This host gets a channel per command.
      this.sessionsOff = true;
      return this.execChannel(command, options);
    } finally {
      if (session.dead && this.sessions.includes(session)) this.sessions.splice(this.sessions.indexOf(session), 1);
    }
  }

  /** One command on a channel of its own: the login shell is started for it. */
  private execChannel(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? this.config.commandTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    return new Promise((resolve, reject) => this.guard((lost) => { clearTimeout(timer); reject(lost); }, (done) => {
      this.client.exec(command, (err, channel: ClientChannel) => {
        if (err) { done(); return reject(new HostError(this.host, `cannot run command: ${err.message}`, { cause: err })); }
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        timer = setTimeout(() => {
          timedOut = true;
          // Closing the channel hangs up the remote command's session.
          channel.signal('KILL');
          channel.close();
        }, timeoutMs);
        channel.setEncoding('utf8');
        channel.stderr.setEncoding('utf8');
        channel.on('data', (d: string) => { stdout = (stdout + d).slice(-MAX_OUTPUT); });
        channel.stderr.on('data', (d: string) => { stderr = (stderr + d).slice(-MAX_OUTPUT); });
        channel.on('close', (code: number | null | undefined) => {
          clearTimeout(timer);
          done();
          if (timedOut) {
            return reject(new HostError(this.host, `command timed out after ${timeoutMs} ms: ${command}`));
          }
          resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
        });
        if (options.input !== undefined) channel.end(options.input);
        else channel.end();
      });
    }));
  }

  /** A command with streamed input and output (rsync's remote side through the tunnel). */
  async stream(command: string): Promise<{ channel: ClientChannel; exit: Promise<number>; lost: () => string | undefined }> {
    const spare = this.spare;
    this.spare = undefined;
    const ready = spare ? await spare : undefined;
    if (ready && !this.lost && !this.spareEnded.has(ready)) {
      ready.write(spareStreamLine(command));
      return { channel: ready, exit: this.exitOf(ready), lost: () => this.lost?.message };
    }
    return new Promise((resolve, reject) => this.guard(reject, (opened) => {
      this.client.exec(command, (err, channel) => {
        opened();
        if (err) return reject(new HostError(this.host, `cannot run command: ${err.message}`, { cause: err }));
        resolve({ channel, exit: this.exitOf(channel), lost: () => this.lost?.message });
      });
    }));
  }

  private exitOf(channel: ClientChannel): Promise<number> {
    return new Promise<number>((settle) => this.guard(() => settle(255), (done) => {
      let code = 255;
      let exited = false;
      channel.on('exit', (c: number | null) => { exited = true; if (typeof c === 'number') code = c; });
      channel.on('close', () => {
        if (exited || this.lost) { done(); settle(code); return; }
        // Closed with no exit status: the connection is most likely going. Its loss (the guard) is
        // given a moment to be known, so that the caller can say so rather than "exit 255".
        setTimeout(() => { done(); settle(code); }, 100);
      });
    }));
  }

  openUnixSocket(path: string): Promise<Duplex> {
    return new Promise((resolve, reject) => this.guard(reject, (done) => {
      this.client.openssh_forwardOutStreamLocal(path, (err, channel) => {
        done();
        if (err) return reject(new HostError(this.host, `cannot open socket ${path} through SSH: ${err.message}`, { cause: err }));
        resolve(channel);
      });
    }));
  }

  close(): Promise<void> {
    // Already closed (the connection was lost): its 'close' event has come and gone, and waiting for it
    // on an unref'd timer alone would leave nothing to keep Node running: it would exit (13) silently.
    if (this.lost) return Promise.resolve();
    for (const session of this.sessions) session.close();
    // The session's bash removes its temporary directory when it exits (a process on the host): the
    // connection ends once that is done, so a pool closing `parallel` hosts at once keeps the bound
    // (issue 17: all 200 hosts' clean-ups at once were the most hosts busy in a run). At most 1 s.
    const sessionsDone = Promise.race([Promise.all(this.sessions.map((s) => s.finished)), new Promise((r) => setTimeout(r, 1000).unref())]);
    return sessionsDone.then(() => new Promise((resolve) => {
      if (this.lost) return resolve();
      this.client.once('close', () => resolve());
      this.client.end();
      setTimeout(resolve, 1000).unref();
    }));
  }
}
