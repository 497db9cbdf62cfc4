/*
 * docs/profiles.md is the users' reference: its examples must load, and every key of the schema
 * and every placeholder must be documented there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProfile } from '../../src/config/load.js';
import { configFile, host, httpCheck, loadBalancer, notify, profile, service, slot, source, sshSettings, state } from '../../src/config/schema.js';
import { PLACEHOLDERS } from '../../src/commands/placeholders.js';
import { CONFIG_PLACEHOLDERS } from '../../src/commands/config-files.js';
import { NAME_PLACEHOLDERS } from '../../src/release/name.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DOC = readFileSync(join(REPO, 'docs', 'profiles.md'), 'utf8');

/** The YAML blocks of the "complete example" section, each opening with "# profiles/<stage>.yaml". */
function examples(): Array<{ stage: string; text: string }> {
  const section = DOC.split(/^## A complete example$/m)[1] ?? '';
  return [...section.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => {
    const text = m[1] ?? '';
    const stage = /^# profiles\/([a-z0-9_-]+)\.yaml$/m.exec(text)?.[1];
    assert.ok(stage, `example without a "# profiles/<stage>.yaml" first line:\n${text}`);
    return { stage, text };
  });
}

test('the complete examples of docs/profiles.md load', async () => {
  const blocks = examples();
  assert.deepEqual(blocks.map((b) => b.stage), ['prod', 'dev']);
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-docs-'));
  try {
    await mkdir(join(dir, 'profiles'));
    for (const b of blocks) await writeFile(join(dir, 'profiles', `${b.stage}.yaml`), b.text);
    const project = { dir, stateDir: join(dir, '.updateserver') };
    const prod = await loadProfile(project, 'prod');
    assert.equal(prod.from, 'beta');
    assert.deepEqual(Object.keys(prod.services), ['web', 'api']);
    assert.equal(prod.hosts.app3?.port, 2222);
    assert.equal(prod.services.api?.slots.b.dir, '/srv/api/green');
    const dev = await loadProfile(project, 'dev');
    assert.equal(dev.services.web?.slots.a.dir, '/srv/web/a');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('docs/profiles.md documents every key of the schema and every placeholder', () => {
  const sections = { profile, source, ssh: sshSettings, host, loadBalancer, service, slot, health: httpCheck, configFile, notify, state };
  const missing = Object.entries(sections).flatMap(([where, schema]) =>
    Object.keys(schema.shape).filter((key) => !DOC.includes(`| \`${key}\` |`)).map((key) => `${where}.${key}`));
  assert.deepEqual(missing, []);
  for (const p of new Set([...PLACEHOLDERS, ...CONFIG_PLACEHOLDERS, ...NAME_PLACEHOLDERS])) assert.ok(DOC.includes(`| \`{${p}}\` |`), `placeholder {${p}} is not documented`);
});
