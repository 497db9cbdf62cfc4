import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_SLOT, SLOTS, backendName, backendOfMapEntry, defaultDatabaseName, idleSlot, isSlotName, maintenanceKey, otherSlot, parseSlot,
  readonlyKey, slotOfBackend, slotOfMapEntry,
} from '../../src/config/slot.js';
import { ConfigError } from '../../src/errors.js';
import { renderMap } from '../../src/lb/config.js';
import { maintenanceEntries } from '../../src/maintenance/maintenance.js';

describe('the slot vocabulary (src/config/slot.ts)', () => {
  test('two slots, a the default, each the other\'s idle slot', () => {
    assert.deepEqual(SLOTS, ['a', 'b']);
    assert.equal(DEFAULT_SLOT, 'a');
    assert.equal(otherSlot('a'), 'b');
    assert.equal(idleSlot('b'), 'a');
    assert.equal(isSlotName('b'), true);
    assert.equal(isSlotName('c'), false);
  });

  test('backend names are <service>_<slot>, and read back to their slot', () => {
    assert.equal(backendName('web', 'b'), 'web_b');
    assert.equal(slotOfBackend('web', 'web_b'), 'b');
    assert.equal(slotOfBackend('web', 'api_b'), undefined);
    assert.equal(slotOfBackend('web', undefined), undefined);
    // A map without an entry sends traffic to the default backend: slot a.
    assert.equal(slotOfMapEntry('web', undefined), 'a');
    assert.equal(slotOfMapEntry('web', 'web_x'), undefined);
    assert.equal(backendOfMapEntry('web', undefined), 'web_a');
    assert.equal(backendOfMapEntry('web', 'web_b'), 'web_b');
  });

  test('map keys of the write freeze and maintenance, as maintenance and the map file use them', () => {
    assert.equal(readonlyKey('web'), 'web.readonly');
    assert.equal(maintenanceKey('web'), 'web.maintenance');
    assert.deepEqual(maintenanceEntries('web', 'read-only'), { 'web.maintenance': 'off', 'web.readonly': 'on' });
    assert.equal(renderMap({ web: 'b' }, { [readonlyKey('web')]: 'off' }), 'web web_b\nweb.readonly off\n');
  });

  test('default database names: <service>_<stage>_<slot>, dashes made underscores', () => {
    assert.equal(defaultDatabaseName('my-app', 'pre-prod', 'b'), 'my_app_pre_prod_b');
  });

  test('--slot: a or b, absent is undefined, anything else is bad input naming --slot', () => {
    assert.equal(parseSlot('b'), 'b');
    assert.equal(parseSlot(undefined), undefined);
    assert.throws(() => parseSlot('c'), (err: unknown) => err instanceof ConfigError && err.exitCode === 2 && /command line: --slot: expected a or b, found "c"/.test(err.message));
  });
});
