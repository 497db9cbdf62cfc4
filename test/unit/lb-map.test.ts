import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addMapCommand, parseShowMap, setMapCommand, showMapCommand } from '../../src/lb/map.js';

const MAP = '/etc/haproxy/live-staging.map';

describe('map commands', () => {
  test('are built exactly', () => {
    assert.equal(showMapCommand(MAP), 'show map /etc/haproxy/live-staging.map');
    assert.equal(setMapCommand(MAP, 'web', 'web_b'), 'set map /etc/haproxy/live-staging.map web web_b');
    assert.equal(addMapCommand(MAP, 'api', 'api_a'), 'add map /etc/haproxy/live-staging.map api api_a');
  });

  test('refuse a file, key or value that would split or chain the command', () => {
    assert.throws(() => showMapCommand('/etc/haproxy/live map'), /map file "\/etc\/haproxy\/live map" cannot be a runtime API argument/);
    assert.throws(() => setMapCommand(MAP, 'web;show', 'web_b'), RangeError);
    assert.throws(() => setMapCommand(MAP, 'web', 'web_b\nshutdown sessions server web_a/h1'), RangeError);
    assert.throws(() => addMapCommand(MAP, 'web', ''), RangeError);
    assert.throws(() => addMapCommand(MAP, 'web', 'web b'), RangeError);
  });

  test('refuse a key starting with "#", which HAProxy would read as an entry id', () => {
    assert.throws(() => setMapCommand(MAP, '#0x55f0a1c2e3d0', 'web_b'), /starts with "#"/);
  });
});

describe('parseShowMap', () => {
  test('reads entry lines as captured from HAProxy 2.6.12', () => {
    const reply = '0x5602255e41ee0 web web_a\n0x5602255e42a10 api api_b\n\n';
    assert.deepEqual(parseShowMap(reply), [{ key: 'web', value: 'web_a' }, { key: 'api', value: 'api_b' }]);
  });

  test('an empty map is an empty list', () => {
    assert.deepEqual(parseShowMap('\n'), []);
  });

  test('a value keeps its spaces; an entry without a value (an ACL) has an empty one', () => {
    assert.deepEqual(parseShowMap('0x1 key some value\n0xab only\n'), [{ key: 'key', value: 'some value' }, { key: 'only', value: '' }]);
  });

  test('refuses a line that is not an entry', () => {
    assert.throws(() => parseShowMap('# id (file) description\n'), /unexpected line in show map output/);
  });
});
