import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseKillAt } from '../../src/apply/apply.js';

test('the fault-injection hook is inert unless set, and a malformed value is refused rather than ignored', () => {
  assert.equal(parseKillAt(undefined), undefined);
  assert.equal(parseKillAt(''), undefined);
  assert.deepEqual(parseKillAt('switch:2'), { phase: 'switch', n: 2, at: 'end' });
  assert.deepEqual(parseKillAt('stop-old:1:end'), { phase: 'stop-old', n: 1, at: 'end' });
  assert.deepEqual(parseKillAt('drain:1:begin'), { phase: 'drain', n: 1, at: 'begin' });
  assert.throws(() => parseKillAt('switch'), /UPDATESERVER_KILL_AT=switch: expected <phase>:<n>\[:begin\|:end\]/);
  assert.throws(() => parseKillAt('switch:x'), /expected/);
});
