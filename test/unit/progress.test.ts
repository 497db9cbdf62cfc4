import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress } from '../../src/cli/progress.js';
import { PLAN_VERSION, type Plan } from '../../src/plan/plan.js';

const exec = (host: string, title: string) => ({ kind: 'exec' as const, host, command: 'true', title });
const plan: Plan = {
  version: PLAN_VERSION, action: 'promote', stage: 'beta', from: 'dev', createdAt: '2026-01-01T00:00:00.000Z', liveAfter: { web: 'b' },
  services: [{ service: 'web', live: 'a', target: 'b', release: 'r1', liveRelease: 'r0', source: 'dev', hosts: ['h1', 'h2'] }],
  phases: [
    { name: 'copy', title: 'Copy the release to every host', items: [{ target: 'h1', actions: [exec('h1', 'prepare'), exec('h1', 'copy')] }, { target: 'h2', actions: [exec('h2', 'prepare'), exec('h2', 'copy')] }] },
    { name: 'freeze', title: 'Freeze writes', items: [] },
    { name: 'start', title: 'Start the idle slot', items: [{ target: 'h1', actions: [exec('h1', 'start')] }, { target: 'h2', actions: [exec('h2', 'start')] }] },
  ],
};

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { stream: { isTTY, write: (s: string) => { writes.push(s); return true; } }, writes };
}

/** What a terminal shows after these writes: cursor-up + clear-to-end erase the previous drawing. */
function screen(writes: string[]): string[] {
  let lines: string[] = [];
  for (const w of writes) {
    const m = /^\x1b\[(\d+)A\r\x1b\[J/.exec(w);
    if (m) lines = lines.slice(0, lines.length - Number(m[1]));
    lines.push(...w.replace(/^\x1b\[\d+A\r\x1b\[J/, '').split('\n').filter((l) => l !== ''));
  }
  return lines;
}

test('on a terminal the step list is redrawn in place with each host\'s state', () => {
  const { stream, writes } = fakeStream(true);
  const p = new Progress(plan, stream, { NO_COLOR: '1' });
  assert.deepEqual(screen(writes), ['Copy the release to every host', '  pending h1', '  pending h2', 'Start the idle slot', '  pending h1', '  pending h2']);
  p.onStep({ phase: 'copy', target: 'h1', title: 'prepare', state: 'begin' });
  p.onStep({ phase: 'copy', target: 'h1', title: 'prepare', state: 'end' });
  p.onStep({ phase: 'copy', target: 'h2', title: 'prepare', state: 'begin' });
  p.onStep({ phase: 'copy', target: 'h2', title: 'prepare', state: 'fail', error: 'disk full' });
  p.onStep({ phase: 'copy', target: 'h1', title: 'copy', state: 'begin' });
  p.onStep({ phase: 'copy', target: 'h1', title: 'copy', state: 'end' });
  // Six lines on screen however many redraws: each replaced the one before.
  assert.deepEqual(screen(writes), [
    'Copy the release to every host', '  done    h1  2/2', '  failed  h2  0/2  prepare: disk full', 'Start the idle slot', '  pending h1', '  pending h2',
  ]);
  assert.ok(writes.length === 7 && writes.slice(1).every((w) => w.startsWith('\x1b[6A\r\x1b[J')));
  assert.ok(!writes.join('').includes('\x1b[3'), 'NO_COLOR: no colour codes');
  assert.deepEqual(p.states().map((s) => s.state), ['done', 'failed', 'pending', 'pending']);
});

test('a running host shows its current step; colour on a terminal without NO_COLOR', () => {
  const { stream, writes } = fakeStream(true);
  const p = new Progress(plan, stream, {});
  p.onStep({ phase: 'start', target: 'h2', title: 'start', state: 'begin' });
  const last = writes[writes.length - 1]!;
  assert.match(last, /\x1b\[33mrunning\x1b\[0m h2  0\/1  start/);
  assert.match(last, /\x1b\[2mpending\x1b\[0m h1/);
});

test('not a terminal: one plain line per finished step, nothing redrawn, no colour', () => {
  const { stream, writes } = fakeStream(false);
  const p = new Progress(plan, stream, {});
  assert.deepEqual(writes, []);
  p.onStep({ phase: 'copy', target: 'h1', title: 'prepare', state: 'begin' });
  p.onStep({ phase: 'copy', target: 'h1', title: 'prepare', state: 'end' });
  p.onStep({ phase: 'start', target: 'h2', title: 'start', state: 'begin' });
  p.onStep({ phase: 'start', target: 'h2', title: 'start', state: 'fail', error: 'exit 1' });
  assert.deepEqual(writes, ['done   copy h1: prepare\n', 'FAILED start h2: start: exit 1\n']);
  // Events of steps outside the plan (recovery's own) are ignored.
  p.onStep({ phase: 'stop-old', target: 'h9', title: 'x', state: 'end' });
  assert.equal(writes.length, 2);
});
