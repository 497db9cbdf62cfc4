import { quoteAll, urlHost } from '../commands/shell.js';
import { describeConnection } from '../data/connection.js';
import { formatBytes } from '../bytes.js';
import { templateRefusal } from '../data/template.js';
import { verifyCachedArgv } from '../promote/source.js';
import { describeChangeLog } from '../data/changes/describe.js';
import { beginValues } from '../data/migrations/steps.js';
import type { Action, Plan } from './plan.js';
import { serverHealthCommand } from '../lb/haproxy.js';
import { setMapCommand, showMapCommand } from '../lb/map.js';
import { describeGate, describeGates, describePause } from '../rollout/render.js';
import { DEFAULT_PAUSE_DEADLINE_MS } from '../rollout/profile.js';

function describeCheck(a: Extract<Action, { kind: 'check' }>): string {
  const c = a.check;
  if (c.http) return `${c.http.method} http://${urlHost(a.target.address)}:${a.target.port}${c.http.path} (expect ${c.http.status.join('/')}${Object.keys(c.http.expectHeaders).length ? `, headers ${JSON.stringify(c.http.expectHeaders)}` : ''})`;
  if (c.tcp) return `tcp connect ${a.target.address}:${a.target.port}`;
  if (c.command) return `on ${a.target.sshHost}: $ ${a.target.command ?? c.command.run}`;
  return `sql ${c.sql?.query ?? ''}`;
}

/** The copy as it will run; whether the TEMPLATE fast path is taken is decided then, and logged with its reason. */
function describeDataCopy(a: Extract<Action, { kind: 'data-copy' }>): string {
  const src = describeConnection(a.source);
  const dst = describeConnection(a.target);
  if (a.source.engine !== 'postgres') return `mysqldump --single-transaction ${src} | mysql ${dst}; compare row counts`;
  const dump = a.jobs > 1
    ? `pg_dump -Fd -j ${a.jobs} -Z0 (one snapshot) ${src}, then pg_restore -j ${a.jobs} into ${dst}`
    : `pg_dump -Fc -Z0 (one snapshot) ${src} | pg_restore ${dst}`;
  const refusal = templateRefusal(a.source, a.target, a.fastPath);
  if (refusal !== undefined) return `${dump}; compare row counts   (no TEMPLATE fast path: ${refusal})`;
  const when = a.fastPath === 'template' ? 'after ending the other sessions of the source (fastPath: template)' : `if nobody else is connected to ${a.source.database} at that moment`;
  return `CREATE DATABASE ${a.target.database} TEMPLATE ${a.source.database} ${when}; otherwise ${dump}; compare row counts`;
}

const sqlLines = (st: string, indent = '  ') => st.split('\n').map((line, i) => `${i === 0 ? `${indent}sql> ` : `${indent}     `}${line}`);
const values = (list: readonly unknown[]) => list.map((v, i) => `${i + 1}: ${typeof v === 'string' ? `'${v}'` : String(v)}`).join(', ');

/**
 * Every statement the migrate step sends that changes something, as sent (`sql>`): the database and
 * the version table when missing, then per pending migration its begin row, its SQL and its ok row,
 * with the values of their parameters (those only the run knows named).
 */
function describeMigrate(a: Extract<Action, { kind: 'migrate' }>): string {
  const head = [
    ...(a.createDatabase ? [`on the server's ${a.connection.engine === 'postgres' ? 'postgres' : 'admin'} database:`, ...sqlLines(a.createDatabase)] : []),
    ...(a.versionTable ? ['the version table (the database has none):', ...sqlLines(a.versionTable)] : []),
  ];
  if (a.pending.length === 0) return [...head, 'no pending migration'].join('\n');
  const how = a.connection.engine === 'postgres' ? 'one script in one transaction with its ok row' : 'one statement at a time, each committed';
  return [...head, ...a.pending.flatMap((m) => [
    `${m.baseline ? 'B' : 'V'}${m.version} ${m.name} (${m.file}): ${how}`,
    ...(m.rows && a.appliedBy !== undefined ? [...sqlLines(m.rows.begin), `       (values ${values(beginValues(m, a.appliedBy))})`] : []),
    ...m.statements.flatMap((st) => sqlLines(st)),
    ...(m.rows ? [...sqlLines(m.rows.ok), `       (values 1: '${m.label ?? m.name}', 2: <its duration in ms>, 3: <the begin row's id>)`,
      '  on failure, instead (outside the rolled-back transaction on PostgreSQL):', ...sqlLines(m.rows.error), '       (values 1: <its name: the error>, 2: <its duration in ms>, 3: <the begin row\'s id>)'] : []),
  ])].join('\n');
}

function describe(action: Action): string {
  switch (action.kind) {
    case 'exec': return `$ ${action.command}`;
    case 'local': return `(local) $ ${quoteAll(action.argv)}`;
    case 'check': return describeCheck(action);
    case 'data-copy': return [describeDataCopy(action),
    ...(action.sourceBytes === undefined ? [] : [`snapshot size: ${formatBytes(action.sourceBytes)} (${action.sourceBytes} bytes, ${action.source.engine === 'postgres' ? 'pg_database_size' : 'data + index length of its tables'})`]),
    // Issue 21: the source's change log is not the copy's (src/data/snapshot.ts).
    ...(action.dropLog ? ['then drop the source\'s change log and its triggers from the copy:', ...action.dropLog.flatMap((st) => sqlLines(st))]
      : ['then drop the source\'s change log and its triggers from the copy (updateserver_changes)']),
    ].join('\n');
    case 'migrate': return describeMigrate(action);
    case 'pull': return action.fetch
      ? [`write ${action.fetch.filesFrom} from the manifest on ${action.fetch.host} (sha256 ${action.manifestHash.slice(0, 16)}...), then ${action.fetch.route === 'tunnel' ? 'over the run\'s SSH connection' : 'over OpenSSH'}:`,
        `(local) $ ${quoteAll(action.fetch.argv)}`, `(local) $ ${quoteAll(verifyCachedArgv(action.cacheDir))}`].join('\n')
      : `touch ${action.cacheDir}; keep the newest cached releases`;
    case 'sql': return [`on ${describeConnection(action.connection)}${action.transaction ? ', in one transaction' : ', each statement committed as it runs'}:`,
      ...action.statements.flatMap((st) => sqlLines(st))].join('\n');
    case 'change-log': return describeChangeLog(action);
    case 'report-changes': return action.services.map((s) => [
      `read what users wrote to ${describeConnection(s.connection)} (slot ${s.left}) since it was last reported (its change log), then write the report for \`updateserver replay\`; then, if it has a change log:`,
      ...sqlLines(s.mark), '       (values 1: <the last change read, or the last mark\'s>, 2: <the run id>)',
    ].join('\n')).join('\n');
    case 'watch': return `every ${action.intervalMs} ms for ${action.windowMs} ms:\n${action.probes.map((p) => `  ${describeCheck(p)}`).join('\n')}`;
    case 'server-health': return action.servers.map((srv) => `haproxy> ${serverHealthCommand(action.backend, srv, action.health)}`).join('\n');
    case 'set-map': return Object.entries(action.entries).map(([k, v]) => `haproxy> ${setMapCommand(action.file, k, v)}`).join('\n');
    case 'verify-map': return `haproxy> ${showMapCommand(action.file)}   (expect ${Object.entries(action.expected).map(([k, v]) => `${k} ${v}`).join(', ')})`;
    case 'drain': return `wait until ${Object.keys(action.servers).join(', ')} have no sessions (at most ${action.deadlineMs} ms, then mark their servers down and shut down the rest)`;
    case 'settle': return `wait until ${action.backends.join(', ')} have no request in flight (at most ${action.deadlineMs} ms, else stop: a write among them could be missing from the copy)`;
    case 'persist-map': return `haproxy> ${showMapCommand(action.file)}, then write its entries to ${action.file} (temporary file + rename)`;
    case 'revert-map': return [...Object.entries(action.entries).map(([k, v]) => `haproxy> ${setMapCommand(action.file, k, v)}`),
      `haproxy> ${showMapCommand(action.file)}   (expect ${Object.entries(action.entries).map(([k, v]) => `${k} ${v}`).join(', ')}), then write its entries to ${action.file}`].join('\n');
    case 'drain-new': return `wait until ${action.backends.join(', ')} have no sessions (at most ${action.deadlineMs} ms)`;
    case 'hook': return `${action.host ? `on ${action.host}` : '(local)'}: $ ${action.line}\n(timeout ${action.timeoutMs} ms; a failure ${HOOK_FAILURE[action.failure]})`;
    case 'gate': return describeGate(action);
    case 'pause': return describePause(action);
  }
}

const HOOK_FAILURE = { stop: 'stops the run, live traffic untouched', rollback: 'switches traffic back (critical)', warn: 'is a warning' } as const;

/** The plan's `finally` (issue 19): the failed hooks when the run failed, then the finished hooks. */
function renderFinally(plan: Plan, options: { commands?: boolean }): string[] {
  const out: string[] = [];
  for (const phase of plan.finally ?? []) {
    out.push('', phase.name === 'failed' ? 'If the run fails, at its end:' : 'When the run ends, whatever the result:');
    for (const item of phase.items) {
      out.push(`   [${item.target}]`);
      for (const a of item.actions) {
        out.push(`     - ${a.title}`);
        if (options.commands !== false) out.push(...describe(a).split('\n').map((l) => `         ${l}`));
      }
    }
  }
  return out;
}

/**
 * What runs when a step fails: one line per path by default; `failures: 'full'` (--verbose) lists every
 * step of each path with its command, as the phases are.
 */
function renderFailurePaths(plan: Plan, options: { commands?: boolean; failures?: 'collapsed' | 'full' }): string[] {
  const paths = (plan.onFailure ?? []).filter((p) => p.phases.length > 0);
  if (paths.length === 0) return [];
  const out = ['', 'If a step fails:'];
  for (const path of paths) {
    const steps = path.phases.map((p) => `${p.title.toLowerCase()} (${p.items.map((i) => i.target).join(', ')})`).join(', then ');
    out.push(`  in ${path.on.join(', ')}: ${path.title}: ${steps}`);
    if (options.failures !== 'full') continue;
    for (const p of path.phases) {
      out.push(`    ${p.title}`);
      for (const item of p.items) {
        out.push(`     [${item.target}]`);
        for (const a of item.actions) {
          out.push(`       - ${a.title}`);
          if (options.commands !== false) out.push(...describe(a).split('\n').map((l) => `           ${l}`));
        }
      }
    }
  }
  if (options.failures !== 'full') out.push('  (--verbose shows each of these steps with its command)');
  return out;
}

const HEADLINES: Record<Plan['action'], (plan: Plan) => string> = {
  promote: (p) => `Plan: promote ${p.from} -> ${p.stage}`,
  flip: (p) => `Plan: flip ${p.stage} to its other slot`,
  rollback: (p) => `Plan: roll ${p.stage} back to the slot that was live before`,
  maintenance: (p) => `Plan: ${p.phases[0]?.title.toLowerCase() ?? 'maintenance'} of ${p.stage}`,
  purge: (p) => `Plan: remove old releases from the hosts of ${p.stage}`,
  refresh: (p) => `Plan: refresh ${p.stage} from ${p.from}'s live data`,
};

/** The plan as an operator reads it before a release: what moves where, then every step, then what runs on a failure. */
export function renderPlan(plan: Plan, options: { commands?: boolean; failures?: 'collapsed' | 'full' } = {}): string {
  const out: string[] = [HEADLINES[plan.action](plan)];
  for (const s of plan.services) {
    out.push(`  ${s.service}: slot ${s.live} (${s.liveRelease ?? 'nothing'}) stays live until the switch; ` +
      `slot ${s.target} gets ${s.release} on ${s.hosts.join(', ')}`);
    out.push(`    from ${s.source}`);
    if (s.fetch) out.push(`    pulled into the local cache by the first step (${s.fetch.route === 'tunnel' ? 'over the run\'s SSH connection' : 'over OpenSSH'}; the file list ${s.fetch.filesFrom} written from the release's manifest):`, `      (local) $ ${quoteAll(s.fetch.argv)}`);
    if (s.data) out.push(`    data: ${s.data}`);
    if (s.rollout) out.push(`    rollout: ${s.rollout.steps.map((st) => `${st.weight}% for ${st.holdMs} ms${st.pause ? ` then a pause (deadline ${st.pauseDeadlineMs ?? DEFAULT_PAUSE_DEADLINE_MS} ms)` : ''}`).join(', then ')}, then the switch (100%); gates ${describeGates(s.rollout.gates)}`);
  }
  plan.phases.filter((p) => p.items.length > 0).forEach((phase, i) => {
    out.push('', `${i + 1}. ${phase.title}`);
    for (const item of phase.items) {
      out.push(`   [${item.target}]`);
      for (const a of item.actions) {
        out.push(`     - ${a.title}`);
        if (options.commands !== false) out.push(...describe(a).split('\n').map((l) => `         ${l}`));
      }
    }
  });
  out.push(...renderFailurePaths(plan, options));
  out.push(...renderFinally(plan, options));
  return `${out.join('\n')}\n`;
}
