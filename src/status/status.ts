/*
 * `updateserver status <stage>`: what serves traffic now, per service: the live slot according to
 * each load balancer and to the record, and per host which release each slot holds and whether it runs.
 * Read-only; problems are reported in the result instead of stopping it.
 */
import { loadProfile } from '../config/load.js';
import { SLOTS, connectionOf, type Database, type Project, type SlotName } from '../config/model.js';
import { openDb } from '../data/db.js';
import { loadMigrations } from '../data/migrations/files.js';
import { migrationStatus } from '../data/migrations/runner.js';
import type { StatRow } from '../lb/stat.js';
import { describeError } from '../errors.js';
import { openBalancers } from '../lb/open.js';
import { slotOfBackend } from '../lb/balancer.js';
import { rolloutKey, weightKey } from '../config/slot.js';
import { readHostSlots } from '../observe/slots.js';
import { openState } from '../state/backend.js';
import { describeData, type DataRecord, type HistoryEntry } from '../state/store.js';
import { TransportPool } from '../transport/pool.js';
import { eachLimited } from '../transport/runner.js';
import type { HostSlots } from '../plan/build.js';
import { renderRolloutView, rolloutView, type RolloutView } from './rollout-view.js';

/** One slot's backend on one load balancer: its sessions now and each server's state and weight. */
export interface BackendStatus {
  backend: string;
  slot: SlotName;
  /** Current sessions (show stat scur) summed over the backend's servers. */
  sessions: number;
  servers: Array<{ server: string; status: string; weight: number; sessions: number }>;
}

export interface ServiceStatus {
  service: string;
  /** Live slot per load balancer (undefined where it could not be read). */
  loadBalancers: Record<string, SlotName | string>;
  recorded: SlotName | undefined;
  hosts: Record<string, HostSlots | { error: string }>;
  /** Per load balancer, both slots' backends (absent where show stat could not be read). */
  backends: Record<string, BackendStatus[]>;
  /**
   * Each slot's database: its migration version as read now (null: not readable, e.g. not created yet),
   * and the snapshot it was made from, as recorded by the promotion that filled it.
   */
  data?: Record<SlotName, { database: string; version: number | null; error?: string; snapshot?: DataRecord['snapshot'] }>;
  /** A progressive rollout's split in force, per load balancer: the share of requests and the backend it goes to (docs/decisions/0016). */
  rollout?: Record<string, { weight: number; backend: string }>;
  /** The run's rollout step under way (or paused) with the live gate figures (src/status/rollout-view.ts). */
  rolloutStep?: RolloutView;
}

export interface StageStatus {
  stage: string;
  services: ServiceStatus[];
  problems: string[];
  last: HistoryEntry | undefined;
}

export async function stageStatus(project: Project, stageName: string): Promise<StageStatus> {
  const stage = await loadProfile(project, stageName);
  const state = openState(project, stage);
  const { store } = state;
  let recorded;
  try { recorded = await store.read(stage.name); } catch (err) { await state.close(); throw err; }
  const problems: string[] = [];
  const pool = new TransportPool();
  try {
    const hostNames = [...new Set([...Object.values(stage.services).flatMap((s) => s.hosts), ...Object.values(stage.loadBalancers).flatMap((l) => (l.host ? [l.host] : []))])];
    const connected = await eachLimited(hostNames, stage.parallel, (h) => pool.connectAll([stage.hosts[h]!], 1).then(() => h));
    const up = new Set<string>();
    connected.forEach((r, i) => {
      if (r.status === 'fulfilled') up.add(r.value);
      else problems.push(describeError(r.reason));
      void i;
    });
    const balancers = await openBalancers(stage, (h) => pool.get(h));
    const maps = await Promise.all(balancers.map(async (b) => {
      try {
        return { name: b.name, map: await b.readMap(stage.loadBalancers[b.name]!.mapFile), stat: await b.stat() };
      } catch (err) {
        problems.push(describeError(err));
        return { name: b.name, map: undefined, stat: undefined };
      }
    }));
    const services: ServiceStatus[] = [];
    const progress = await state.rollouts.readProgress(stage.name).catch((err: unknown) => { problems.push(`reading the rollout's progress: ${describeError(err)}`); return undefined; });
    // Whether the run that recorded it still runs: it holds the stage's lock, not stale.
    const holder = progress ? await state.locks.read(stage.name).catch(() => undefined) : undefined;
    const lockPid = holder && !(await state.locks.stale(holder).catch(() => undefined)) ? holder.pid : undefined;
    for (const service of Object.values(stage.services)) {
      const lbs: Record<string, SlotName | string> = {};
      for (const m of maps) {
        if (!m.map) { lbs[m.name] = 'unreachable'; continue; }
        const backend = m.map.get(service.name);
        lbs[m.name] = backend === undefined ? 'a' : slotOfBackend(service.name, backend) ?? `unknown backend ${backend}`;
      }
      const hosts: ServiceStatus['hosts'] = {};
      await Promise.all(service.hosts.map(async (h) => {
        if (!up.has(h)) { hosts[h] = { error: 'unreachable' }; return; }
        try { hosts[h] = await readHostSlots(pool.get(h), service); } catch (err) { hosts[h] = { error: describeError(err) }; }
      }));
      const views = new Set(Object.values(lbs));
      if (views.size > 1) problems.push(`load balancers disagree about ${service.name}: ${JSON.stringify(lbs)}`);
      const rec = recorded?.services[service.name]?.live;
      const lbLive = [...views][0];
      if (rec && views.size === 1 && lbLive !== rec) problems.push(`${service.name}: load balancers say slot ${lbLive}, the record says ${rec}`);
      const split = Object.fromEntries(maps.flatMap((m) => {
        const weight = Number(m.map?.get(weightKey(service.name)) ?? 0);
        return weight > 0 ? [[m.name, { weight, backend: m.map!.get(rolloutKey(service.name)) ?? '(none)' }]] : [];
      }));
      const view = rolloutView(progress, service.name, Object.fromEntries(Object.entries(split).map(([lb, r]) => [lb, r.weight])), Object.fromEntries(maps.map((m) => [m.name, m.stat])), lockPid);
      const backends: ServiceStatus['backends'] = {};
      for (const m of maps) if (m.stat) backends[m.name] = SLOTS.map((slot) => backendStatus(m.stat!, service.slots[slot].backend, slot));
      const recordedData = recorded?.services[service.name]?.data;
      const data = service.database && service.database.strategy !== 'none' ? await dataVersions(service.database, recordedData) : undefined;
      services.push({ service: service.name, loadBalancers: lbs, recorded: rec, hosts, backends, ...(data ? { data } : {}), ...(Object.keys(split).length ? { rollout: split } : {}), ...(view ? { rolloutStep: view } : {}) });
    }
    const last = (await store.history(stage.name, 1))[0];
    return { stage: stage.name, services, problems, last };
  } finally {
    await pool.closeAll();
    await state.close();
  }
}

function backendStatus(rows: readonly StatRow[], backend: string, slot: SlotName): BackendStatus {
  const servers = rows.filter((r) => r.proxy === backend && r.type === 'server').map((r) => ({ server: r.server, status: r.status, weight: r.weight, sessions: r.scur }));
  return { backend, slot, sessions: servers.reduce((sum, x) => sum + x.sessions, 0), servers };
}

/** The schema version each slot's database is at, read from its version table; never fails the status. */
async function dataVersions(db: Database, recorded: Partial<Record<SlotName, DataRecord>> | undefined): Promise<NonNullable<ServiceStatus['data']>> {
  const migrations = await loadMigrations(db.migrations).catch(() => []);
  const one = async (slot: SlotName) => {
    const conn = connectionOf(db, slot);
    // The snapshot is known only from the record; it belongs to this database only if the names agree.
    const snap = recorded?.[slot]?.database === conn.database ? recorded[slot]!.snapshot : undefined;
    const withSnapshot = snap ? { snapshot: snap } : {};
    try {
      const c = await openDb(conn);
      try { return { database: conn.database, version: (await migrationStatus(c, migrations)).current ?? null, ...withSnapshot }; } finally { await c.close(); }
    } catch (err) {
      return { database: conn.database, version: null, error: describeError(err), ...withSnapshot };
    }
  };
  return { a: await one('a'), b: await one('b') };
}

export function renderStatus(status: StageStatus): string {
  const out: string[] = [`Stage ${status.stage}`];
  for (const s of status.services) {
    const live = [...new Set(Object.values(s.loadBalancers))].join('/');
    out.push(`  ${s.service}: live slot ${live} (load balancers: ${Object.entries(s.loadBalancers).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}; recorded: ${s.recorded ?? 'never promoted'})`);
    for (const [host, h] of Object.entries(s.hosts)) {
      if ('error' in h) { out.push(`    ${host}: ${h.error}`); continue; }
      const slot = (x: SlotName) => `${x}=${h.releases[x] ?? '-'}${h.running[x] ? ' (running)' : ''}`;
      out.push(`    ${host}: ${slot('a')}  ${slot('b')}`);
    }
    for (const x of SLOTS) {
      const d = s.data?.[x];
      if (d) out.push(`    data slot ${x}: ${d.database} ${describeData(d)}${d.error ? ` (not readable: ${d.error})` : ''}`);
    }
    for (const [lb, r] of Object.entries(s.rollout ?? {})) out.push(`    ${lb}: rollout in progress: ${r.weight}% of requests to ${r.backend} (a run in progress, or an interrupted one: --abandon or --resume)`);
    if (s.rolloutStep) out.push(...renderRolloutView(status.stage, s.rolloutStep));
    for (const [lb, backends] of Object.entries(s.backends ?? {})) {
      out.push(`    ${lb}: ${backends.map((b) => `${b.backend} ${b.sessions} session(s) [${b.servers.map((x) => `${x.server} ${x.status} w${x.weight}`).join(', ')}]`).join('; ')}`);
    }
  }
  if (status.last) out.push(`  last run: ${status.last.action} ${status.last.result} at ${status.last.at} by ${status.last.user}${status.last.message ? `: ${status.last.message}` : ''}`);
  for (const p of status.problems) out.push(`  problem: ${p}`);
  return `${out.join('\n')}\n`;
}
