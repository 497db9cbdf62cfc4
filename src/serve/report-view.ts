/*
 * The rollback data report (docs/decisions/0015) as HTML, for the run page, the history page and the
 * report's own page: per service left behind, the counts per table at a glance (a table with headers
 * and a caption), then, expandable, the primary keys per operation and, when the report file is at hand,
 * every change with the row before and after. Fields this file does not know (the report may grow, e.g.
 * the files of issue 18) are shown generically rather than dropped. Every text goes through redact():
 * the report never holds a password (src/config/secret.ts), and a connection string quoted in an error
 * message is masked here once more, in case a driver put one there.
 */
import type { ChangeReport, ServiceChanges, TableChanges } from '../data/changes/report.js';
import type { LoggedChange } from '../data/changes/log.js';
import { esc } from './html.js';

/** At most this many keys or changes per table on a page; the rest are in the report file. */
const MAX_LISTED = 500;
const OPS = ['inserted', 'updated', 'deleted'] as const;
const OP_OF: Record<LoggedChange['op'], string> = { I: 'inserted', U: 'updated', D: 'deleted', T: 'truncated (the rows it removed are not listed)' };
const KNOWN_REPORT = new Set(['stage', 'runId', 'action', 'at', 'services']);
const KNOWN_SERVICE = new Set(['service', 'engine', 'slot', 'database', 'servingSlot', 'servingDatabase', 'tables', 'untracked', 'unknown', 'changes']);

/** Masks the password of a URL's user info (scheme://user:secret@host) and of libpq key=value strings. */
export function redact(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/gi, '$1********@')
    .replace(/\b(password\s*=\s*)('[^']*'|"[^"]*"|[^\s;&]+)/gi, '$1********');
}

const t = (value: unknown): string => esc(redact(String(value ?? '')));

/** A primary key as people read it: id=3, or region="eu"/id=3; null for a table without one. */
export function keyText(key: unknown): string {
  if (key === null || key === undefined) return '(no primary key)';
  if (typeof key !== 'object') return JSON.stringify(key);
  return Object.entries(key as Record<string, unknown>).map(([c, v]) => `${c}=${typeof v === 'string' ? JSON.stringify(v) : String(v)}`).join(', ');
}

const total = (s: ServiceChanges, op: (typeof OPS)[number]) => s.tables.reduce((n, x) => n + x[op], 0);

/** "12 inserted, 4 updated, 3 deleted in 2 table(s)", or why nothing can be said. */
export function serviceCounts(s: ServiceChanges): string {
  if (s.unknown) return `unknown: ${s.unknown}`;
  if (s.tables.length === 0) return 'no row was written';
  return `${OPS.map((op) => `${total(s, op)} ${op}`).join(', ')} in ${s.tables.length} table(s)`;
}

const reportPath = (report: ChangeReport) => `/stages/${encodeURIComponent(report.stage)}/changes/${encodeURIComponent(report.runId)}`;

/** For a history row: the counts per service, a link to the whole report, and the tables expandable. */
export function historyChanges(report: ChangeReport): string {
  const services = report.services.map((s) => `<li>${t(s.service)}, slot ${t(s.slot)} left: <strong>${t(serviceCounts(s))}</strong>${s.tables.length ? `<details><summary>per table</summary>${countsTable(s)}</details>` : ''}</li>`).join('');
  return `<div class="report-summary"><p>Written to the slot left behind (<a href="${esc(reportPath(report))}">the report</a>):</p><ul>${services}</ul></div>`;
}

function countsTable(s: ServiceChanges): string {
  const rows = s.tables.map((x) => `<tr data-table="${t(x.table)}"><th scope="row">${t(x.table)}${x.truncated ? ` <span class="bad">(truncated ${esc(x.truncated)} time(s))</span>` : ''}</th>${OPS.map((op) => `<td class="n-${op}">${esc(x[op])}</td>`).join('')}</tr>`).join('');
  return `<table class="counts"><caption>Rows written to slot ${t(s.slot)} of ${t(s.service)} (database ${t(s.database)}) since it went live</caption>
<thead><tr><th scope="col">table</th>${OPS.map((op) => `<th scope="col">${op}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>`;
}

function keysDetails(s: ServiceChanges, x: TableChanges): string {
  const items = OPS.flatMap((op) => x.keys[op].slice(0, MAX_LISTED).map((k) => `<tr data-op="${op}" data-key="${t(JSON.stringify(k))}"><td>${op}</td><td>${t(keyText(k))}</td></tr>`)).join('');
  const more = OPS.reduce((n, op) => n + Math.max(0, x.keys[op].length - MAX_LISTED), 0);
  return `<details class="keys" data-table="${t(x.table)}"><summary>${t(x.table)}: the rows' primary keys</summary>
<table><caption>Table ${t(x.table)} of ${t(s.service)}: rows by operation (a row changed twice is listed once)</caption>
<thead><tr><th scope="col">operation</th><th scope="col">primary key</th></tr></thead><tbody>${items}</tbody></table>${more ? `<p>${more} more in the report file.</p>` : ''}</details>`;
}

function changesDetails(s: ServiceChanges, table: string, changes: LoggedChange[]): string {
  const rows = changes.slice(0, MAX_LISTED).map((c) => `<tr><td>${t(c.seq)}</td><td>${t(c.at)}</td><td>${t(OP_OF[c.op] ?? c.op)}</td><td>${t(c.pk === null ? '(no primary key)' : keyText(safeJson(c.pk)))}</td><td><code>${t(c.old ?? '')}</code></td><td><code>${t(c.new ?? '')}</code></td></tr>`).join('');
  return `<details class="changes" data-table="${t(table)}"><summary>${t(table)}: every change with its rows (${changes.length})</summary>
<table><caption>Changes to table ${t(table)} of ${t(s.service)}, in the order they were made</caption>
<thead><tr><th scope="col">#</th><th scope="col">at</th><th scope="col">operation</th><th scope="col">primary key</th><th scope="col">row before</th><th scope="col">row after</th></tr></thead>
<tbody>${rows}</tbody></table>${changes.length > MAX_LISTED ? `<p>${changes.length - MAX_LISTED} more in the report file.</p>` : ''}</details>`;
}

function safeJson(text: string): unknown {
  try { return JSON.parse(text); } catch { return text; }
}

/** A field this file does not know: an array of objects as a table, anything else as JSON. */
export function generic(name: string, value: unknown): string {
  if (Array.isArray(value) && value.length > 0 && value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
    const cols = [...new Set(value.flatMap((v) => Object.keys(v as object)))];
    const cell = (v: unknown) => t(typeof v === 'string' ? v : JSON.stringify(v) ?? '');
    return `<details class="generic"><summary>${t(name)} (${value.length})</summary><table><caption>${t(name)}</caption>
<thead><tr>${cols.map((c) => `<th scope="col">${t(c)}</th>`).join('')}</tr></thead>
<tbody>${value.slice(0, MAX_LISTED).map((v) => `<tr>${cols.map((c) => `<td>${cell((v as Record<string, unknown>)[c])}</td>`).join('')}</tr>`).join('')}</tbody></table></details>`;
  }
  return `<details class="generic"><summary>${t(name)}</summary><pre>${t(JSON.stringify(value, null, 2))}</pre></details>`;
}

function serviceSection(report: ChangeReport, s: ServiceChanges, h: number): string {
  const id = `rep-${s.service.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const head = `<h${h} id="${esc(id)}">${t(s.service)}: written to slot ${t(s.slot)} since it went live</h${h}>
<p>Slot ${t(s.slot)} (database ${t(s.database)}) was left behind by the ${t(report.action)}; slot ${t(s.servingSlot)} (database ${t(s.servingDatabase)}) serves without these writes.
<strong class="service-counts">${t(serviceCounts(s))}</strong></p>`;
  const untracked = s.untracked.length ? `<p class="bad">NOT recorded (no change-log trigger): table(s) ${t(s.untracked.join(', '))}.</p>` : '';
  const byTable = new Map<string, LoggedChange[]>();
  for (const c of s.changes ?? []) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
  const tables = s.tables.map((x) => keysDetails(s, x) + (s.changes ? changesDetails(s, x.table, byTable.get(x.table) ?? []) : '')).join('');
  const extra = Object.entries(s).filter(([k]) => !KNOWN_SERVICE.has(k)).map(([k, v]) => generic(k, v)).join('');
  return `<section class="report" aria-labelledby="${esc(id)}">${head}${untracked}${s.tables.length ? countsTable(s) : ''}${tables}${extra}</section>`;
}

/** The whole report: the run page (when the run left one, under its own h2: heading 3) and the report's own page. */
export function reportHtml(report: ChangeReport, withRows: boolean, heading = 2): string {
  const extra = Object.entries(report).filter(([k]) => !KNOWN_REPORT.has(k)).map(([k, v]) => generic(k, v)).join('');
  const replay = report.services.some((s) => s.tables.length > 0)
    ? `<p>${withRows ? '' : `The rows themselves are in the report file of the host that ran it (${t(`changes/${report.stage}-${report.runId}.json`)} under the state directory). `}To apply them to the database that serves now: <code>updateserver replay ${t(report.stage)} --run ${t(report.runId)} --dry-run</code></p>`
    : '';
  return `<div id="changes-report">${report.services.map((s) => serviceSection(report, s, heading)).join('')}${extra}${replay}</div>`;
}
