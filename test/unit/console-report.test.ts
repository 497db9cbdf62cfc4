/*
 * The console's written-data report and rollout split without a server (issue 22): what the HTML holds
 * for a report (counts, keys, rows, fields it does not know), that a password in a connection string
 * never reaches the page, and how the rollout's steps follow the run's step and log events.
 * In a browser on the lab: test/integration/console-report-browser.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { historyChanges, keyText, redact, reportHtml } from '../../src/serve/report-view.js';
import { onLogEvent, onStepEvent, rolloutSteps, rolloutTable, teeLogger } from '../../src/serve/rollout-view.js';
import { historyPage } from '../../src/serve/pages.js';
import type { ChangeReport } from '../../src/data/changes/report.js';
import type { Plan } from '../../src/plan/plan.js';
import type { HistoryEntry } from '../../src/state/store.js';
import { silentLogger } from '../../src/log.js';

const report = (): ChangeReport => ({
  stage: 'beta', runId: 'run-1', action: 'rollback', at: '2026-12-05T03:00:00.000Z',
  services: [{
    service: 'web', engine: 'postgres', slot: 'b', database: 'app_b', servingSlot: 'a', servingDatabase: 'app_a', untracked: ['late_table'],
    tables: [
      { table: 'writes', inserted: 2, updated: 1, deleted: 1, keys: { inserted: [{ id: 11 }, { id: 12 }], updated: [{ id: 3 }], deleted: [{ id: 5 }] } },
      { table: 'events', inserted: 1, updated: 0, deleted: 0, keys: { inserted: [{ id: 1 }], updated: [], deleted: [] } },
    ],
    changes: [
      { seq: '1', at: '2026-12-05T02:59:00Z', table: 'writes', op: 'I', pk: '{"id": 11}', old: null, new: '{"id": 11, "k": "<script>x</script>"}' },
      { seq: '2', at: '2026-12-05T02:59:01Z', table: 'writes', op: 'U', pk: '{"id": 3}', old: '{"id": 3, "n": 0}', new: '{"id": 3, "n": 100}' },
    ],
  }, {
    service: 'api', engine: 'postgres', slot: 'a', database: 'api_a', servingSlot: 'b', servingDatabase: 'api_b', tables: [], untracked: [],
    unknown: 'could not read what was written: postgres://app:hunter2-secret@db.internal:5432/api_a: password=other-secret refused',
  }],
});

describe('the written-data report as HTML', () => {
  test('counts per table in a captioned table with headers; keys and rows expandable; everything escaped', () => {
    const html = reportHtml(report(), true);
    assert.match(html, /<caption>Rows written to slot b of web \(database app_b\) since it went live<\/caption>/);
    assert.match(html, /<th scope="col">inserted<\/th><th scope="col">updated<\/th><th scope="col">deleted<\/th>/);
    assert.match(html, /<tr data-table="writes"><th scope="row">writes<\/th><td class="n-inserted">2<\/td><td class="n-updated">1<\/td><td class="n-deleted">1<\/td><\/tr>/);
    assert.match(html, /<strong class="service-counts">3 inserted, 1 updated, 1 deleted in 2 table\(s\)<\/strong>/);
    assert.match(html, /<details class="keys" data-table="writes"><summary>writes: the rows' primary keys<\/summary>/);
    assert.match(html, /<tr data-op="inserted" data-key="\{&quot;id&quot;:12\}"><td>inserted<\/td><td>id=12<\/td><\/tr>/);
    assert.match(html, /<summary>writes: every change with its rows \(2\)<\/summary>/);
    assert.ok(!html.includes('<script>'), 'a row value is escaped');
    assert.match(html, /NOT recorded \(no change-log trigger\): table\(s\) late_table/);
    assert.match(html, /updateserver replay beta --run run-1 --dry-run/);
  });

  test('no password of a connection string reaches the page, even quoted in an error', () => {
    const html = reportHtml(report(), true);
    assert.ok(!html.includes('hunter2-secret'));
    assert.ok(!html.includes('other-secret'));
    assert.match(html, /postgres:\/\/app:\*{8}@db\.internal:5432\/api_a/);
    assert.equal(redact('mysql://root@127.0.0.1/x'), 'mysql://root@127.0.0.1/x', 'no password, nothing masked');
  });

  test('a field the console does not know yet (files, later) is shown, not dropped', () => {
    const r = report() as ChangeReport & { services: Array<Record<string, unknown>> };
    r.services[0]!.files = [{ path: 'uploads/a.png', op: 'added' }, { path: 'uploads/b.png', op: 'removed' }];
    const html = reportHtml(r, true);
    assert.match(html, /<summary>files \(2\)<\/summary><table><caption>files<\/caption>/);
    assert.match(html, /<th scope="col">path<\/th><th scope="col">op<\/th>/);
    assert.match(html, /<td>uploads\/b\.png<\/td><td>removed<\/td>/);
  });

  test('history: counts at a glance, a link to the whole report; without rows the page says where they are', () => {
    const { services, ...rest } = report();
    const noRows: ChangeReport = { ...rest, services: services.map(({ changes: _c, ...s }) => s) };
    const entry: HistoryEntry = { at: noRows.at, stage: 'beta', action: 'rollback', result: 'ok', user: 'alice', services: { web: { from: 'b', to: 'a', release: 'r1' } }, durationMs: 5, changes: noRows };
    const page = historyPage('alice', 'csrf', 'beta', [entry]);
    assert.match(page, /<a href="\/stages\/beta\/changes\/run-1">the report<\/a>/);
    assert.match(page, /web, slot b left: <strong>3 inserted, 1 updated, 1 deleted in 2 table\(s\)<\/strong>/);
    assert.match(historyChanges(noRows), /api, slot a left: <strong>unknown: could not read what was written: postgres:\/\/app:\*{8}@/);
    assert.match(reportHtml(noRows, false), /The rows themselves are in the report file/);
    assert.doesNotMatch(reportHtml(noRows, false), /every change with its rows/);
  });

  test('keys read as column=value', () => {
    assert.equal(keyText({ region: 'eu', id: 3 }), 'region="eu", id=3');
    assert.equal(keyText(null), '(no primary key)');
  });
});

describe('the rollout split on the run page', () => {
  const gate = (step: number, weight: number) => ({
    kind: 'gate' as const, service: 'web', step, weight, holdMs: 3000, deadlineMs: 6000, loadBalancers: ['lb'], oldBackend: 'web_a', newBackend: 'web_b',
    gates: { max5xxRate: 0.01, maxErrorRate: 0.01, maxLatencyRatio: 1.5, latencyFloorMs: 20, minRequests: 20, onTooFew: 'fail' as const },
    title: `step ${step}: hold ${weight}% for 3000 ms`,
  });
  const plan = { phases: [{ name: 'rollout', title: 'rollout', items: [{ target: 'web', actions: [gate(1, 5), gate(2, 25)] }] }] } as unknown as Plan;
  const figures = { old: { responses: 190, http5xx: 0, errors: 0, rtimeMs: 4 }, new: { responses: 10, http5xx: 1, errors: 0, rtimeMs: 5 }, share: 0.05, rate5xx: { old: 0, new: 0.1 }, errorRate: { old: 0, new: 0 }, latencyRatio: 1 };

  test('each step\'s weight from the plan; the state from the step events; the figures and verdicts from the run\'s log events', () => {
    const steps = rolloutSteps(plan);
    assert.deepEqual(steps.map((s) => [s.step, s.weight, s.state]), [[1, 5, 'waiting'], [2, 25, 'waiting']]);
    assert.equal(onStepEvent(steps, { phase: 'rollout', target: 'web', title: 'step 1: hold 5% for 3000 ms', state: 'begin' })?.state, 'holding');
    assert.equal(onStepEvent(steps, { phase: 'switch', target: 'lb', title: 'other', state: 'begin' }), undefined);
    assert.equal(onLogEvent(steps, { event: 'deploy' }), undefined);
    const seen: unknown[] = [];
    const logger = teeLogger(silentLogger, (f) => { const s = onLogEvent(steps, f); if (s) seen.push({ ...s }); });
    logger.debug('tick', { event: 'rollout-gate', service: 'web', step: 1, weight: 5, result: 'too-few', figures });
    logger.error('stop', { event: 'rollout-abort', service: 'web', step: 1, gate: 'max5xxRate', figures });
    assert.equal(seen.length, 2);
    assert.equal(steps[0]!.state, 'failed');
    assert.equal(steps[0]!.verdict, 'gate max5xxRate failed');
    assert.match(steps[0]!.figuresText!, /^new slot 10 req \(5\.00% of the window\), old 190; 5xx 10\.00% vs 0\.00%/);
    const html = rolloutTable(steps);
    assert.match(html, /<caption>Traffic split during the rollout/);
    assert.match(html, /<tr id="ro-web-1"><th scope="row">web step 1<\/th><td class="weight">5%<\/td><td class="old-weight">95%<\/td><td class="ro-failed">failed \(gate max5xxRate failed\)<\/td>/);
    assert.match(html, /<tr id="ro-web-2"><th scope="row">web step 2<\/th><td class="weight">25%<\/td><td class="old-weight">75%<\/td><td class="ro-waiting">waiting<\/td>/);
    assert.equal(rolloutTable([]), '');
  });

  test('a paused step shows as paused until its deadline, then as continued by the user who answered', () => {
    const steps = rolloutSteps(plan);
    onStepEvent(steps, { phase: 'rollout', target: 'web', title: 'step 2: hold 25% for 3000 ms', state: 'end' });
    onLogEvent(steps, { event: 'rollout-pause', service: 'web', step: 2, weight: 25, id: 'x', deadline: '2026-12-05T06:00:00.000Z' });
    assert.match(rolloutTable(steps), /<td class="ro-paused">paused \(until 2026-12-05T06:00:00\.000Z: continue or abort\)<\/td>/);
    onLogEvent(steps, { event: 'rollout-continue', service: 'web', step: 2, user: 'alice' });
    assert.match(rolloutTable(steps), /<td class="ro-passed">passed \(continued by alice\)<\/td>/);
  });
});
