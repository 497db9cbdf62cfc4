/*
 * Recording wrappers around the real connections of a run (not fakes: every call goes on to the real
 * ssh2 transport and HAProxy runtime client), and the effects a plan says a run has, in the same words,
 * so that a test can compare what ran with what the plan (and so the dry run) said, item by item.
 */
import type { Balancer } from '../../src/lb/balancer.js';
import type { Transport } from '../../src/transport/transport.js';
import type { StreamingTransport } from '../../src/transport/tunnel.js';
import type { Instrument } from '../../src/promote/stage-link.js';
import type { Action, Phase, Plan } from '../../src/plan/plan.js';
import type { Db } from '../../src/data/db.js';
import { describeConnection } from '../../src/data/connection.js';
import { dumpCopyEffects } from '../../src/data/snapshot.js';
import { adminDatabase } from '../../src/data/migrations/sql.js';
import { verifyCachedArgv } from '../../src/promote/source.js';

/** One effect on one target (a host or a load balancer), in words comparable with effectsOf(). */
export interface Effect { target: string; effect: string }

export class Recorder {
  readonly effects: Effect[] = [];
  /** Balancer writes, whether recording or not (a dry run must make none). */
  readonly balancerWrites: Effect[] = [];
  private on = false;

  start(): void { this.on = true; }
  stop(): void { this.on = false; }

  private add(target: string, effect: string): void {
    if (this.on) this.effects.push({ target, effect });
  }

  instrument(): Instrument {
    return {
      transport: (t) => this.transport(t),
      balancer: (b) => this.balancer(b),
      db: (d) => this.db(d),
      local: (argv) => this.add('local', `run ${maskRuntime(maskLocal(argv.join(' ')))}`),
    };
  }

  /** A database session: every statement that changes something, on the database it was sent to. */
  db(real: Db): Db {
    const record = (sql: string) => { if (changes(sql)) this.add(real.label, `sql ${sql}`); };
    return {
      engine: real.engine, label: real.label,
      query: (sql, params) => { record(sql); return real.query(sql, params); },
      exec: (sql) => { record(sql); return real.exec(sql); },
      tx: (fn) => real.tx(fn),
      close: () => real.close(),
    };
  }

  transport(real: Transport): Transport {
    const streaming = real as Transport & Partial<StreamingTransport>;
    const wrapped: Transport & Partial<StreamingTransport> = {
      host: real.host,
      exec: (command, options) => { this.add(real.host, `exec ${maskRuntime(command)}`); return real.exec(command, options); },
      openUnixSocket: (path) => real.openUnixSocket(path),
      close: () => real.close(),
    };
    if (streaming.stream) wrapped.stream = (command) => { this.add(real.host, rsyncEffect(command)); return streaming.stream!(command); };
    return wrapped;
  }

  balancer(real: Balancer): Balancer {
    const write = (effect: string) => {
      this.balancerWrites.push({ target: real.name, effect });
      this.add(real.name, effect);
    };
    return {
      name: real.name,
      setMap: (file, key, value) => { write(`set map ${file} ${key} ${value}`); return real.setMap(file, key, value); },
      serverHealth: (backend, server, health) => { write(`set server ${backend}/${server} health ${health}`); return real.serverHealth(backend, server, health); },
      shutdownSessions: (backend, server) => { write(`shutdown sessions server ${backend}/${server}`); return real.shutdownSessions(backend, server); },
      persistMap: (file) => { write(`persist ${file}`); return real.persistMap(file); },
      readMap: (file) => real.readMap(file),
      sessions: (backends) => real.sessions(backends),
      stat: () => real.stat(),
      close: () => real.close(),
    };
  }

  /** The recorded effects per target, in the order they happened there; a retried command check counts once. */
  byTarget(): Record<string, string[]> {
    return group(this.effects, true);
  }
}

/** A hook's line with the facts known only when it runs (run id, result) as the plan shows them. */
function maskRuntime(command: string): string {
  return command.replace(/\bUPDATESERVER_(RUN_ID|RESULT|ERROR)=('[^']*(?:'\\''[^']*)*'|\S*)/g, (_, k: string) => `UPDATESERVER_${k}='<${k.toLowerCase().replace('_', ' ')}>'`);
}

/**
 * rsync's remote side as the host receives it (`<rsync-path> --server ... . <dir>`), reduced to what the
 * plan's argv decides: the remote setup, the --link-dest and the directory.
 */
function rsyncEffect(command: string): string {
  const server = command.indexOf(' --server');
  const setup = server < 0 ? command : command.slice(0, server);
  const linkDest = /--link-dest[= ](\S+)/.exec(command)?.[1];
  return `rsync ${setup} link-dest ${linkDest ?? '-'} into ${command.trim().split(' ').at(-1)}`;
}

function rsyncOfArgv(argv: readonly string[]): string {
  const setup = argv.find((a) => a.startsWith('--rsync-path='))?.slice('--rsync-path='.length) ?? 'rsync';
  const linkDest = argv.find((a) => a.startsWith('--link-dest='))?.slice('--link-dest='.length);
  const dest = argv.at(-1)!;
  return `rsync ${setup} link-dest ${linkDest ?? '-'} into ${dest.slice(dest.indexOf(':') + 1)}`;
}

/** Statements that only read or frame a transaction change nothing. */
function changes(sql: string): boolean {
  const first = /^\s*(?:--[^\n]*\n\s*)*([A-Za-z]+)/.exec(sql)?.[1]?.toUpperCase();
  return first !== undefined && !['SELECT', 'SHOW', 'BEGIN', 'COMMIT', 'ROLLBACK', 'START', 'SET', 'EXPLAIN'].includes(first);
}

/** What only the run knows (pg_dump's exported snapshot, the temporary dump directory) in the words of dumpCopyEffects. */
const RUN_ONLY = { snapshot: '<snapshot>', dir: '<dir>' };
function maskLocal(command: string): string {
  return command.replace(/--snapshot=\S+/g, `--snapshot=${RUN_ONLY.snapshot}`).replace(/\S*\/updateserver-dump-[^/\s]+/g, RUN_ONLY.dir);
}

/** The effects one action of a plan has, as the recorder words them. Reads (map read-back, session counts, HTTP checks) have none. */
export function effectsOfAction(a: Action): Effect[] {
  switch (a.kind) {
    case 'exec': return [{ target: a.host, effect: `exec ${a.command}` }];
    case 'local': return [{ target: 'local', effect: `run ${a.argv.join(' ')}` }, ...(a.route === 'tunnel' && a.host ? [{ target: a.host, effect: rsyncOfArgv(a.argv) }] : [])];
    case 'check': return a.target.command !== undefined && a.target.sshHost ? [{ target: a.target.sshHost, effect: `exec ${a.target.command}` }] : [];
    case 'watch': return a.probes.flatMap(effectsOfAction);
    case 'server-health': return a.servers.map((s) => ({ target: a.loadBalancer, effect: `set server ${a.backend}/${s} health ${a.health}` }));
    case 'set-map': return Object.entries(a.entries).map(([k, v]) => ({ target: a.loadBalancer, effect: `set map ${a.file} ${k} ${v}` }));
    case 'persist-map': return [{ target: a.loadBalancer, effect: `persist ${a.file}` }];
    case 'revert-map': return [...Object.entries(a.entries).map(([k, v]) => ({ target: a.loadBalancer, effect: `set map ${a.file} ${k} ${v}` })), { target: a.loadBalancer, effect: `persist ${a.file}` }];
    // The pull's rsync, as this machine runs it (a promotion whose release is cached pulls nothing).
    case 'pull': return a.fetch ? [{ target: 'local', effect: `run ${a.fetch.argv.join(' ')}` }, { target: 'local', effect: `run ${verifyCachedArgv(a.cacheDir).join(' ')}` }] : [];
    // A hook runs its line on its host, or on this machine through bash.
    case 'hook': return a.host ? [{ target: a.host, effect: `exec ${a.line}` }] : [{ target: 'local', effect: `run bash -c ${a.line}` }];
    case 'sql': return a.statements.map((sql) => ({ target: describeConnection(a.connection), effect: `sql ${sql}` }));
    // A copy by TEMPLATE is decided when it runs; a plan that may take it is compared by dump only where fastPath is off.
    case 'data-copy': return a.fastPath === 'off' ? dumpCopyEffects(a.source, a.target, a.jobs, RUN_ONLY, a.dropLog) : [];
    case 'migrate': return migrateEffects(a);
    // The report's one write: its mark in each change log it read (the lab's slots all have one).
    case 'report-changes': return a.services.map((s) => ({ target: describeConnection(s.connection), effect: `sql ${s.mark}` }));
    // MySQL's install spells out the columns of the tables found when it runs: not plan text, not compared.
    case 'change-log': return (a.statements ?? []).map((sql) => ({ target: describeConnection(a.connection), effect: `sql ${sql}` }));
    // With no session left at the deadline, a drain changes nothing.
    case 'drain': case 'drain-new': case 'settle': case 'verify-map':
    // A gate reads HAProxy's counters; the rollout's shares are set-map actions of their own.
    // A pause reads the counters and waits for an answer in the state backend: nothing on a host or load balancer.
    case 'gate': case 'pause': return [];
  }
}

/** A migrate step: the database and version table when the plan creates them, then each migration's begin row, statements and ok row. */
function migrateEffects(a: Extract<Action, { kind: 'migrate' }>): Effect[] {
  const on = describeConnection(a.connection);
  const sql = (target: string, text: string): Effect => ({ target, effect: `sql ${text}` });
  return [
    ...(a.createDatabase ? [sql(describeConnection({ ...a.connection, database: adminDatabase(a.connection) }), a.createDatabase)] : []),
    ...(a.versionTable ? [sql(on, a.versionTable)] : []),
    ...a.pending.flatMap((m) => [...(m.rows ? [sql(on, m.rows.begin)] : []), ...m.statements.map((st) => sql(on, st)), ...(m.rows ? [sql(on, m.rows.ok)] : [])]),
  ];
}

/** Every effect of these phases, per target in plan order (items of a phase run concurrently, a target's actions in order). */
export function effectsOf(phases: readonly Phase[]): Record<string, string[]> {
  return group(phases.flatMap((p) => p.items.flatMap((i) => i.actions.flatMap(effectsOfAction))), true);
}

/** What a plan says a successful run does; and, failing in `failAt`, the phases up to it and then its failure path. */
export function plannedEffects(plan: Plan, failAt?: Phase['name']): Record<string, string[]> {
  const fin = (names: string[]) => (plan.finally ?? []).filter((p) => names.includes(p.name));
  if (failAt === undefined) return effectsOf([...plan.phases, ...fin(['finished'])]);
  const upTo = plan.phases.slice(0, plan.phases.findIndex((p) => p.name === failAt) + 1);
  const path = plan.onFailure?.find((f) => f.on.includes(failAt));
  return effectsOf([...upTo, ...(path?.phases ?? []), ...fin(['failed', 'finished'])]);
}

function group(effects: readonly Effect[], collapseRepeats: boolean): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of effects) {
    const list = (out[e.target] ??= []);
    if (collapseRepeats && list.at(-1) === e.effect && e.effect.startsWith('exec ')) continue;
    list.push(e.effect);
  }
  return out;
}
