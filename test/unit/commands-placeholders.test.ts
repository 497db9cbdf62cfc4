import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expand, PLACEHOLDERS, unknownPlaceholders, type SlotContext } from '../../src/commands/placeholders.js';
import { spawnSync } from 'node:child_process';

const CTX: SlotContext = {
  stage: 'staging', service: 'web', host: 'h1', address: '10.0.0.11', slot: 'b', port: 8082,
  dir: '/srv/web/b', release: '2026.11.22-223104-1.0.0-3fa9c2d1', config: '/srv/web/run/b',
};

describe('expand', () => {
  test('{database} is the slot\'s database name', () => {
    assert.equal(expand('app --db postgres://db/{database}', { ...CTX, database: 'web_prod_b' }), 'app --db postgres://db/web_prod_b');
  });

  test('replaces every placeholder', () => {
    assert.equal(
      expand('app {stage} {service} {host} {address} {slot} {port} {dir} {release} {config}', CTX),
      'app staging web h1 10.0.0.11 b 8082 /srv/web/b 2026.11.22-223104-1.0.0-3fa9c2d1 /srv/web/run/b',
    );
  });

  test('replaces repeated placeholders and placeholders inside words', () => {
    assert.equal(expand('node {dir}/server.mjs --port={port} --log={dir}/log-{slot}', CTX),
      'node /srv/web/b/server.mjs --port=8082 --log=/srv/web/b/log-b');
  });

  test('quotes values that need it, so a value can never change the shape of the command', () => {
    const ctx: SlotContext = { ...CTX, dir: '/srv/my app', release: "x'; rm -rf / #", host: '$(id)' };
    assert.equal(expand('run {dir} {release} {host}', ctx), "run '/srv/my app' 'x'\\''; rm -rf / #' '$(id)'");
  });

  test('quoted values come out of bash as one argument each, unchanged', () => {
    const ctx: SlotContext = { ...CTX, dir: '/srv/my app', release: "x'; echo pwned #", host: '$(id)\nnext' };
    const result = spawnSync('bash', ['-c', expand("printf '<%s>' {dir} {release} {host} {port}", ctx)], { encoding: 'utf8' });
    assert.equal(result.stdout, `</srv/my app><x'; echo pwned #><$(id)\nnext><8082>`);
  });

  test('leaves unknown placeholders and other braces as they are', () => {
    assert.equal(expand('app {unknown} {port} {PORT} {} {po rt} ${HOME} {{port}}', CTX), 'app {unknown} 8082 {PORT} {} {po rt} ${HOME} {8082}');
    assert.equal(expand('no placeholders', CTX), 'no placeholders');
  });

  test('does not treat inherited object properties as placeholders', () => {
    assert.equal(expand('{constructor} {toString}', CTX), '{constructor} {toString}');
  });
});

describe('unknownPlaceholders', () => {
  test('names the placeholders expand would leave alone', () => {
    assert.deepEqual(unknownPlaceholders('app {port} {prot} {dir} {releases} {constructor}'), ['prot', 'releases', 'constructor']);
    assert.deepEqual(unknownPlaceholders('app {port} --x'), []);
  });

  test('every documented placeholder is known', () => {
    assert.deepEqual([...PLACEHOLDERS], ['stage', 'service', 'host', 'address', 'slot', 'port', 'dir', 'release', 'config', 'database', 'instance', 'files', 'snapshot']);
    assert.deepEqual(unknownPlaceholders(PLACEHOLDERS.map((p) => `{${p}}`).join(' ')), []);
  });
});
