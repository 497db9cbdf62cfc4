/*
 * Executes one action of a plan. Each kind of action has exactly one way to run, so what a dry run
 * prints is what a real run does.
 */
import { CommandFailed, LoadBalancerError, UpdateserverError, describeError } from '../errors.js';
import { runCheck, type CheckReport } from '../health/checks.js';
import { runLocal } from '../transport/local.js';
import { run } from '../transport/transport.js';
import { quoteAll } from '../commands/shell.js';
import { bytesSent } from '../commands/rsync.js';
import { runDataCopy, runMigrate, runSql } from './data-actions.js';
import { runPull } from '../promote/source.js';
import { runChangeLog } from './change-log-action.js';
import { runReportChanges } from './report-action.js';
import type { Action } from '../plan/plan.js';
import type { ApplyContext } from './context.js';
import { runHook } from '../hooks/run.js';
import { runGate } from '../rollout/gate.js';
import { runPause } from '../rollout/pause.js';

function balancer(ctx: ApplyContext, name: string) {
  const b = ctx.balancers[name];
  if (!b) throw new Error(`internal: no connection to load balancer ${name}`);
  return b;
}

export async function runAction(ctx: ApplyContext, action: Action): Promise<void> {
  switch (action.kind) {
    case 'exec': {
      const result = await run(ctx.pool.get(action.host), action.command, { what: action.title });
      if (action.output) ctx.outputs?.push({ ...action.output, host: action.host, stdout: result.stdout });
      return;
    }
    case 'local': {
      // Exactly the argv of the plan; the tunnel route only adds the environment its remote shell needs.
      const argv = action.argv;
      if (action.route === 'tunnel' && !ctx.tunnel) throw new Error(`internal: ${action.title} goes through the run's SSH connection, but the run opened no tunnel`);
      const result = await runLocal(argv, { host: action.host ?? 'local', ...(action.route === 'tunnel' && ctx.tunnel ? { env: ctx.tunnel.env() } : {}) });
      if (result.code !== 0) throw new CommandFailed(action.host ?? 'local', quoteAll(argv), result, action.title);
      const sent = argv[0] === 'rsync' ? bytesSent(result.stdout) : undefined;
      if (sent !== undefined) {
        ctx.transfers?.push({ host: action.host ?? 'local', bytesSent: sent });
        ctx.logger.debug(`${action.title}: rsync sent ${sent} bytes`, { host: action.host, bytesSent: sent });
      }
      return;
    }
    case 'check':
      await runCheckAction(ctx, action);
      return;
    case 'watch':
      await watch(ctx, action);
      return;
    case 'data-copy':
      await runDataCopy(ctx, action);
      return;
    case 'migrate':
      await runMigrate(ctx, action);
      return;
    case 'sql':
      await runSql(ctx, action);
      return;
    case 'pull': {
      const manifest = ctx.pull?.manifests.get(action.manifestHash);
      if (manifest === undefined || !ctx.pull) throw new Error(`internal: the pull of ${action.release} has no manifest from the read phase`);
      await runPull(action, manifest, action.fetch?.route === 'tunnel' ? await ctx.pull.tunnel() : undefined);
      return;
    }
    case 'report-changes':
      await runReportChanges(ctx, action);
      return;
    case 'change-log':
      await runChangeLog(ctx, action);
      return;
    case 'server-health':
      for (const server of action.servers) await balancer(ctx, action.loadBalancer).serverHealth(action.backend, server, action.health);
      return;
    case 'set-map':
      for (const [key, value] of Object.entries(action.entries)) await balancer(ctx, action.loadBalancer).setMap(action.file, key, value);
      return;
    case 'verify-map':
      await verifyMap(ctx, action.loadBalancer, action.file, action.expected);
      return;
    case 'persist-map':
      await balancer(ctx, action.loadBalancer).persistMap(action.file);
      return;
    case 'settle':
      await settle(ctx, action);
      return;
    case 'drain':
      await drain(ctx, action);
      return;
    case 'drain-new':
      await waitForNewSlot(ctx, action);
      return;
    case 'hook':
      await runHook(ctx, action);
      return;
    case 'gate':
      await runGate(ctx, action);
      return;
    case 'pause':
      await runPause(ctx, action);
      return;
    case 'revert-map':
      // Failure paths run it themselves (apply.ts revertMap): it must report, not throw.
      throw new Error(`internal: ${action.title} runs only on a failure path`);
  }
}

/**
 * Waits for the old backends to have no sessions. Requests still running at the deadline (long polls,
 * downloads, websockets) are shut down so the old slot can stop, and reported by count.
 */
/**
 * After the freeze no write reaches the live slot, but one accepted just before it may still be
 * running and commit after the snapshot. One sample with no request in flight on the live backend
 * proves every such write has finished: what starts after the freeze is a read. Reads are short, so
 * such a sample comes quickly even under load; without one by the deadline the copy is not made.
 */
async function settle(ctx: ApplyContext, action: Extract<Action, { kind: 'settle' }>): Promise<void> {
  const lb = balancer(ctx, action.loadBalancer);
  const started = Date.now();
  let inFlight = await lb.sessions(action.backends);
  while (inFlight > 0 && Date.now() - started < action.deadlineMs) {
    await new Promise((r) => setTimeout(r, 10));
    inFlight = await lb.sessions(action.backends);
  }
  if (inFlight > 0) {
    throw new UpdateserverError(`${action.loadBalancer}: ${inFlight} request(s) still in flight on ${action.backends.join(', ')} ${action.deadlineMs} ms after the write freeze; a write among them could commit after the snapshot and be missing from the copy`, {
      hint: 'nothing was copied or switched; promote again when the requests are done, or raise the service\'s drainTimeoutMs',
    });
  }
  if (Date.now() - started >= 50) ctx.logger.info(`${action.loadBalancer}: requests accepted before the freeze finished after ${Date.now() - started} ms`);
}

async function drain(ctx: ApplyContext, action: Extract<Action, { kind: 'drain' }>): Promise<void> {
  const lb = balancer(ctx, action.loadBalancer);
  const backends = Object.keys(action.servers);
  const deadline = Date.now() + action.deadlineMs;
  let sessions = await lb.sessions(backends);
  while (sessions > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    sessions = await lb.sessions(backends);
  }
  if (sessions === 0) return;
  // Marked down first: a session shut down looks to HAProxy like a server that closed without answering,
  // and the rendered `retry-on ... empty-response` with `option redispatch` would send the same request
  // again to another server of the old slot (observed on 2.6: the request then ran to its end, or until
  // stop-old killed the slot). With no server up, the retry ends at once with HAProxy's 503. A switch to
  // this backend marks its servers up again before sending it traffic.
  for (const [backend, servers] of Object.entries(action.servers)) {
    for (const server of servers) await lb.serverHealth(backend, server, 'down');
  }
  for (const [backend, servers] of Object.entries(action.servers)) {
    for (const server of servers) await lb.shutdownSessions(backend, server);
  }
  const note = `${action.loadBalancer}: ${sessions} session(s) on ${backends.join(', ')} were still open after the ${action.deadlineMs} ms drain deadline and were shut down`;
  ctx.warnings.push(note);
  ctx.logger.warn(note);
}

export async function runCheckAction(ctx: ApplyContext, action: Extract<Action, { kind: 'check' }>): Promise<CheckReport> {
  const t = action.target;
  try {
    const report = await runCheck(action.check, action.phase, {
      ...t, ...(t.sshHost ? { transport: ctx.pool.get(t.sshHost) } : {}),
    });
    ctx.reports.push(report);
    ctx.logger.info(`${action.title}: ok (${report.attempts} attempt(s), ${report.ms} ms)`, { host: t.host, report });
    return report;
  } catch (err) {
    const report = (err as { report?: CheckReport }).report;
    if (report) {
      ctx.reports.push(report);
      ctx.logger.error(`${action.title}: FAILED: ${report.lastError} (${report.attempts} attempt(s), ${report.ms} ms)`, { host: t.host, report });
    }
    throw err;
  }
}

/**
 * Runs every watch probe once per interval until the window ends. The first failure ends the watch
 * at once (the caller switches back): there is no point in confirming a failure while users see it.
 */
async function watch(ctx: ApplyContext, action: Extract<Action, { kind: 'watch' }>): Promise<void> {
  const end = Date.now() + action.windowMs;
  let rounds = 0;
  while (Date.now() < end) {
    const started = Date.now();
    await Promise.all(action.probes.map((p) => runCheck(p.check, 'watch', { ...p.target, ...(p.target.sshHost ? { transport: ctx.pool.get(p.target.sshHost) } : {}) })
      .catch((err: unknown) => {
        const report = (err as { report?: CheckReport }).report;
        if (report) ctx.reports.push(report);
        ctx.logger.error(`watch check ${p.check.name} on ${p.target.label} FAILED: ${report?.lastError ?? describeError(err)}`, { host: p.target.host, report });
        throw err;
      })));
    rounds++;
    const wait = Math.min(action.intervalMs - (Date.now() - started), end - Date.now());
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  ctx.logger.info(`watched for ${action.windowMs} ms: ${rounds} round(s) of ${action.probes.length} check(s) passed`);
}

/** A failure path's wait for the requests the new slot received; never fails (only logs). */
export async function waitForNewSlot(ctx: ApplyContext, action: Extract<Action, { kind: 'drain-new' }>): Promise<void> {
  const balancer = ctx.balancers[action.loadBalancer];
  if (!balancer) return;
  const deadline = Date.now() + action.deadlineMs;
  try {
    let sessions = await balancer.sessions(action.backends);
    while (sessions > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      sessions = await balancer.sessions(action.backends);
    }
    if (sessions > 0) ctx.logger.warn(`${action.loadBalancer}: ${sessions} request(s) still open on the new slot after ${action.deadlineMs} ms; stopping it anyway`);
  } catch (err) {
    ctx.logger.warn(`${action.loadBalancer}: could not wait for the new slot's requests to finish: ${describeError(err)}`);
  }
}

/** Verifies after a switch that each service's map entry names the backend we set. */
export async function verifyMap(ctx: ApplyContext, lbName: string, file: string, expected: Record<string, string>): Promise<void> {
  const map = await balancer(ctx, lbName).readMap(file);
  const wrong = Object.entries(expected).filter(([k, v]) => map.get(k) !== v);
  if (wrong.length > 0) {
    throw new LoadBalancerError(lbName, `after the switch the map says ${wrong.map(([k]) => `${k} -> ${map.get(k) ?? '(none)'}`).join(', ')}; expected ${wrong.map(([k, v]) => `${k} -> ${v}`).join(', ')}`);
  }
}
