/*
 * Per-slot config files: the exact command, and what it writes when bash runs it on a release laid
 * out as on a host (each slot gets its own file; the release is not written).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CONFIG_PLACEHOLDERS, configValues, renderConfigFiles } from '../../src/commands/config-files.js';
import { configDir, releaseDir } from '../../src/commands/release.js';
import type { DatabaseConnection, Service, SlotName } from '../../src/config/model.js';
import type { SlotContext } from '../../src/commands/placeholders.js';
import { loadSampleService, serviceAt } from './fixtures.js';

const R = '2026.11.29-142301-v1.4.0-9f3c2ab';
const BASE = await loadSampleService('node server.mjs --port {port}');
const FILES = [{ template: 'config/app.env.tmpl', path: 'config/app.env' }, { template: 'nginx.conf.in', path: 'nginx.conf' }];
const WEB = serviceAt(BASE, '/srv/web', { configFiles: FILES });

const ctx = (service: Service, slot: SlotName): SlotContext => ({
  stage: 'beta', service: 'web', host: 'h1', address: '10.0.0.11', slot, port: service.slots[slot].port,
  dir: service.slots[slot].dir, release: R, config: configDir(service, slot),
});
const db = (slot: SlotName): DatabaseConnection => ({ engine: 'postgres', host: 'db1.example.net', port: 5432, user: 'app', password: undefined, database: `web_beta_${slot}` });

describe('renderConfigFiles', () => {
  test('nothing to render without configFiles', () => {
    assert.equal(renderConfigFiles(BASE, 'a', ctx(BASE, 'a'), undefined), undefined);
  });

  test('the exact command: each template checked, rendered by sed into run/<slot>/, renamed into place', () => {
    const sed = 's|{stage}|beta|g; s|{service}|web|g; s|{host}|h1|g; s|{address}|10.0.0.11|g; s|{slot}|b|g; s|{port}|8082|g; ' +
      `s|{dir}|/srv/web/b|g; s|{release}|${R}|g; s|{config}|/srv/web/run/b|g; ` +
      's|{database}|web_beta_b|g; s|{dbhost}|db1.example.net|g; s|{dbport}|5432|g; s|{dbuser}|app|g';
    assert.equal(renderConfigFiles(WEB, 'b', ctx(WEB, 'b'), db('b')),
      `{ [ -f /srv/web/releases/${R}/config/app.env.tmpl ] || { echo 'config template config/app.env.tmpl is missing from release ${R}' >&2; exit 3; }; } && ` +
      `mkdir -p /srv/web/run/b/config && sed -e '${sed}' /srv/web/releases/${R}/config/app.env.tmpl > /srv/web/run/b/config/app.env.tmp && mv -f /srv/web/run/b/config/app.env.tmp /srv/web/run/b/config/app.env && ` +
      `{ [ -f /srv/web/releases/${R}/nginx.conf.in ] || { echo 'config template nginx.conf.in is missing from release ${R}' >&2; exit 3; }; } && ` +
      `mkdir -p /srv/web/run/b && sed -e '${sed}' /srv/web/releases/${R}/nginx.conf.in > /srv/web/run/b/nginx.conf.tmp && mv -f /srv/web/run/b/nginx.conf.tmp /srv/web/run/b/nginx.conf`);
  });

  test('without a database, the database placeholders are not replaced', () => {
    const values = configValues(ctx(WEB, 'a'), undefined).map(([k]) => k);
    assert.deepEqual(values, ['stage', 'service', 'host', 'address', 'slot', 'port', 'dir', 'release', 'config']);
    assert.deepEqual(configValues(ctx(WEB, 'a'), db('a')).map(([k]) => k), [...CONFIG_PLACEHOLDERS]);
  });

  test('a value that could change the sed script is refused (the profile never allows one)', () => {
    assert.throws(() => configValues({ ...ctx(WEB, 'a'), release: 'x|y' }, undefined), /\{release\} = "x\|y" cannot go into a config file/);
    assert.throws(() => configValues(ctx(WEB, 'a'), { ...db('a'), host: 'a&b' }), /\{dbhost\}/);
  });
});

describe('renderConfigFiles, run by bash', () => {
  const root = mkdtempSync(join(tmpdir(), 'updateserver-config-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const service = serviceAt(BASE, root, { configFiles: FILES });
  const release = releaseDir(service, R);
  mkdirSync(join(release, 'config'), { recursive: true });
  writeFileSync(join(release, 'config', 'app.env.tmpl'), 'SLOT={slot}\nPORT={port}\nDB={database}@{dbhost}:{dbport}\nDIR={config}\nKEEP={unknown} ${HOME} {}\n');
  writeFileSync(join(release, 'nginx.conf.in'), 'listen {address}:{port}; # {stage}/{service} {release}\n');
  const bash = (command: string) => spawnSync('bash', ['-c', command], { encoding: 'utf8' });

  test('each slot gets its own files; the release stays as it was', () => {
    for (const slot of ['a', 'b'] as const) {
      const r = bash(renderConfigFiles(service, slot, ctx(service, slot), db(slot))!);
      assert.equal(r.status, 0, r.stderr);
    }
    const port = (slot: SlotName) => service.slots[slot].port;
    for (const slot of ['a', 'b'] as const) {
      assert.equal(readFileSync(join(root, 'run', slot, 'config', 'app.env'), 'utf8'),
        `SLOT=${slot}\nPORT=${port(slot)}\nDB=web_beta_${slot}@db1.example.net:5432\nDIR=${root}/run/${slot}\nKEEP={unknown} \${HOME} {}\n`);
      assert.equal(readFileSync(join(root, 'run', slot, 'nginx.conf'), 'utf8'), `listen 10.0.0.11:${port(slot)}; # beta/web ${R}\n`);
      assert.deepEqual(readdirSync(join(root, 'run', slot)).sort(), ['config', 'nginx.conf'], 'no temporary file left');
    }
    assert.deepEqual(readdirSync(join(release, 'config')), ['app.env.tmpl']);
  });

  test('a template missing from the release stops it, naming the template and the release', () => {
    const missing = serviceAt(BASE, root, { configFiles: [{ template: 'no/such.tmpl', path: 'x.conf' }] });
    const r = bash(renderConfigFiles(missing, 'a', ctx(missing, 'a'), undefined)!);
    assert.equal(r.status, 3);
    assert.equal(r.stderr.trim(), `config template no/such.tmpl is missing from release ${R}`);
    assert.equal(existsSync(join(root, 'run', 'a', 'x.conf')), false);
  });
});
