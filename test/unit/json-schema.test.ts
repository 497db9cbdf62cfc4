/*
 * The JSON Schemas (schema/*.schema.json) are what the validator's zod schemas generate, and they
 * refuse exactly what those schemas refuse: every profile file of the broken-profile corpus, the
 * repository's and the starter's profiles, and a set of health-check files go through both. Corpus
 * cases that the validator refuses for reasons no JSON Schema can express are listed by name, with
 * the reason, and the test fails when that list is not exactly the set of cases the schema accepts.
 *
 * The JSON Schema side runs on ajv (draft 2020-12), the validator editors' YAML servers resemble most.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { jsonSchema, jsonSchemaText, SCHEMA_FILES, type SchemaName } from '../../src/config/json-schema.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CORPUS = join(REPO, 'test', 'fixtures', 'profiles', 'broken');

type Validate = (data: unknown) => boolean;

const ajv = new Ajv2020({ allErrors: true });
const compile = (schema: object): Validate => ajv.compile(schema);
const jsonValidators = {
  profile: compile(jsonSchema('profile')),
  healthchecks: compile(jsonSchema('healthchecks')),
} satisfies Record<SchemaName, Validate>;

/** The YAML's data, or undefined when the text is not valid YAML (the editor's YAML parser reports that, not the schema). */
/** The file's data as an editor's YAML parser sees it; undefined when it is not YAML it can turn into data (an alias bomb included). */
function yamlData(text: string): { data: unknown } | undefined {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) return undefined;
  try {
    return { data: doc.toJS() };
  } catch {
    return undefined;
  }
}

const zodAccepts = (which: SchemaName, data: unknown) => SCHEMA_FILES[which].schema.safeParse(data).success;

test('schema/*.schema.json are what `npm run schema` writes from the zod schemas (stale files fail here)', () => {
  for (const which of Object.keys(SCHEMA_FILES) as SchemaName[]) {
    const file = join(REPO, SCHEMA_FILES[which].file);
    assert.ok(existsSync(file), `${SCHEMA_FILES[which].file} is missing: run npm run schema`);
    assert.equal(readFileSync(file, 'utf8'), jsonSchemaText(which), `${SCHEMA_FILES[which].file} is stale: run npm run schema and commit it`);
  }
});

/**
 * Corpus cases refused by the validator although every profile file in them is accepted by the
 * schema, and why no JSON Schema of one file can refuse them.
 */
const INEXPRESSIBLE: Record<string, string> = {
  // rules across fields (src/config/cross-checks.ts)
  'port-duplicate-slots': 'cross-field: a port used twice on one machine',
  'port-duplicate-services': 'cross-field: a port used twice on one machine',
  'port-listen-duplicate': 'cross-field: two services with one listen port',
  'port-listen-on-lb-host': 'cross-field: a slot port equal to a listen port on the load balancer\'s address',
  'slots-share-dir': 'cross-field: two slots with one directory',
  'slot-dir-is-root': 'cross-field: a slot directory compared with the service root',
  'slot-dir-is-releases': 'cross-field: a slot directory compared with the service root',
  'slot-dir-in-run': 'cross-field: a slot directory compared with the service root',
  'root-shared-by-services': 'cross-field: two services with one root on one machine',
  'service-unknown-host': 'cross-field: a reference to a host that is not declared',
  'service-host-twice': 'cross-field: a host listed twice',
  'lb-unknown-host': 'cross-field: a reference to a host that is not declared',
  'lb-shared-socket': 'cross-field: two load balancers on one socket',
  'no-load-balancer': 'cross-field: services but no load balancer',
  'from-itself': 'cross-field: from: equal to the stage name, which is the file name',
  'from-and-source': 'cross-field: from: and source: together',
  'neither-from-nor-source': 'cross-field: neither from: nor source:',
  'start-unknown-placeholder': 'cross-field: placeholders of a command',
  'state-differs-from-previous': 'cross-file: the state store of the stage named by from:',
  'stop-unknown-placeholder': 'cross-field: placeholders of a command',
  // across files
  'from-unknown-stage': 'across files: from: names a stage without a profile',
  'from-circular': 'across files: a from: chain that loops',
  // the file's name, or no file
  'stage-name-semicolon': 'the stage name is the file name, not content',
  'stage-name-subshell': 'the stage name is the file name, not content',
  'stage-name-space': 'the stage name is the file name, not content',
  'stage-name-uppercase': 'the stage name is the file name, not content',
  'stage-not-found': 'there is no profile file',
  // YAML itself, reported by the editor's YAML parser
  'yaml-syntax-error': 'not YAML',
  'yaml-duplicate-key': 'YAML with a key twice',
  'yaml-alias-bomb': 'aliases that expand to too much data: the YAML parser refuses to make data of it',
  // refused by the reader of the file, before the schema (src/config/yaml-file.ts)
  'control-path-nul': 'a control character in a free-form path: the reader refuses it in every string',
  'names-proto-key': 'a "__proto__" key: the reader refuses it; the schema library drops such a key from a record',
  'profile-is-directory': 'there is no profile file: a directory stands in its place',
  // migration files, read with the profiles before any connection (src/config/migration-files.ts)
  'migration-misnamed': 'across files: a migration file named wrongly',
  'migration-version-twice': 'across files: two migration files of one version',
};

/** Corpus files that the JSON Schema refuses although the schema library would pass them on. */
const JSON_SCHEMA_STRICTER: Record<string, string> = {
  'names-proto-key/profiles/prod.yaml': 'propertyNames refuses "__proto__"; the schema library drops it (the reader refuses it first)',
};

interface FileVerdict { file: string; yaml: boolean; zod: boolean }

function corpusCase(name: string): FileVerdict[] {
  const profiles = join(CORPUS, name, 'profiles');
  if (!existsSync(profiles)) return [];
  // A "profile" that is a directory is no file to give a schema (the validator refuses it as not a file).
  return readdirSync(profiles).filter((f) => f.endsWith('.yaml') && statSync(join(profiles, f)).isFile()).sort().map((f) => {
    const parsed = yamlData(readFileSync(join(profiles, f), 'utf8'));
    return { file: `profiles/${f}`, yaml: parsed !== undefined, zod: parsed !== undefined && zodAccepts('profile', parsed.data) };
  });
}

const CASES = readdirSync(CORPUS).sort();

test('the corpus: the cases the zod schema accepts are exactly the ones listed as inexpressible', () => {
  assert.ok(CASES.length >= 60, `corpus has ${CASES.length} cases`);
  const accepted = CASES.filter((c) => corpusCase(c).every((v) => v.zod || !v.yaml));
  assert.deepEqual(accepted, Object.keys(INEXPRESSIBLE).sort());
});

test('the corpus: the JSON Schema refuses every profile file the zod schema refuses, and accepts the others', () => {
  const disagreements: string[] = [];
  for (const c of CASES) {
    for (const v of corpusCase(c)) {
      if (!v.yaml) continue;
      const data = yamlData(readFileSync(join(CORPUS, c, v.file), 'utf8'))!.data;
      const json = jsonValidators.profile(data);
      if (json !== v.zod && !(`${c}/${v.file}` in JSON_SCHEMA_STRICTER && !json)) disagreements.push(`${c}/${v.file}: zod ${v.zod ? 'accepts' : 'refuses'}, JSON Schema ${json ? 'accepts' : 'refuses'}`);
    }
  }
  assert.deepEqual(disagreements, []);
});

const VALID_PROFILES = [
  ...['dev', 'beta', 'test', 'prod'].map((s) => join(REPO, 'profiles', `${s}.yaml`)),
  ...['dev', 'prod'].map((s) => join(REPO, 'starter', 'profiles', `${s}.yaml`)),
];

/** A profile with every key of the format set, so that no key the validator knows is missing from the JSON Schema. */
const EVERY_KEY = `
source: { path: app }
ssh: { user: deploy, port: 22, key: ~/.ssh/id, knownHosts: kh, connectTimeoutMs: 5000, commandTimeoutMs: 60000 }
hosts:
  h1: { address: 10.0.0.1, user: other, port: 2222, key: k2 }
loadBalancers:
  lb: { socket: /run/a.sock, mapFile: /etc/m.map, host: h1, address: 10.0.0.9, timeoutMs: 2000 }
services:
  web:
    hosts: [h1]
    root: /srv/web
    listen: 8080
    slots: { a: { port: 8001, dir: /srv/web/blue }, b: { port: 8002 } }
    start: node server.mjs --port {port}
    build: npm ci
    stop: kill {port}
    stopTimeoutMs: 1000
    exclude: ['*.log', tmp/]
    database: { engine: mysql, strategy: copy-self, host: db1, port: 3306, user: app, passwordEnv: DB_PW, names: { a: web_a, b: web_b }, migrations: db/migrations, jobs: 4 }
    checks: web
    health: { path: /up?x=1, expectStatus: [200, 204], attemptTimeoutMs: 500, intervalMs: 50, deadlineMs: 3000 }
    drainTimeoutMs: 1000
parallel: 4
serial: true
keepReleases: 3
`;

test('valid profiles (the repository\'s, the starter\'s, one with every key) pass the zod schema and the JSON Schema', async () => {
  const texts = [...VALID_PROFILES.map((f) => ({ name: f, text: readFileSync(f, 'utf8') })), { name: 'every key', text: EVERY_KEY }];
  for (const { name, text } of texts) {
    const data = yamlData(text)!.data;
    assert.ok(zodAccepts('profile', data), `zod refuses ${name}`);
    if (jsonValidators) assert.ok(jsonValidators.profile(data), `the JSON Schema refuses ${name}`);
  }
});

/** Health-check files: valid ones, then broken ones, each refused by the zod schema. */
const HEALTHCHECKS_VALID = [
  readFileSync(join(REPO, 'starter', 'healthchecks', 'web.yaml'), 'utf8'),
  readFileSync(join(REPO, 'healthchecks', 'web.yaml'), 'utf8'),
  '{}\n',
  'pre:\n  - name: up\n    http: {}\n',
  'pre:\n  - name: port\n    tcp: {}\n    attempts: 3\n    backoff: 1.5\npost:\n  - name: cmd\n    command: { run: "test -f /tmp/x" }\n',
  'post:\n  - name: body\n    http:\n      method: POST\n      headers: { X-A: b }\n      body: "{}"\n      status: [200, 201]\n      bodyContains: ok\n      bodyMatches: "^v[0-9]+"\n      json: { path: a.b, equals: 3 }\n      expectHeaders: { X-Slot: "{slot}" }\n      maxLatencyMs: 200\n',
  'watch:\n  windowMs: 1000\n  intervalMs: 100\n  checks:\n    - name: schema\n      sql: { query: select 1, expect: "1" }\n',
];
const HEALTHCHECKS_BROKEN = [
  'pre:\n  - name: up\n    deadlineMs: 1000\n', // no kind
  'pre:\n  - name: both\n    http: {}\n    tcp: {}\n', // two kinds
  'watch:\n  checks:\n    - name: both\n      tcp: {}\n      command: { run: "true" }\n',
  'pre:\n  - name: up\n    tcp: {}\n    timeout: 5\n', // unknown key
  'post:\n  - name: up\n    http:\n      expectStatus: [200]\n',
  'pre:\n  - name: port\n    tcp: { port: 8001 }\n',
  'pre:\n  - name: up\n    http: { status: [200, 700] }\n',
  'pre:\n  - name: up\n    http: { status: [] }\n',
  'pre:\n  - name: up\n    http: { status: [200.5] }\n',
  'pre:\n  - name: Up\n    http: {}\n', // invalid name
  'pre:\n  - name: up\n    command: { run: "a\\nb" }\n', // multi-line command
  'pre:\n  - name: up\n    http: { method: FETCH }\n',
  'post:\n  - name: v\n    http: { json: { path: build..version, equals: "1" } }\n', // json path with an empty key
  '- name: up\n', // a list
  '', // empty
];
/**
 * Refused by the validator, accepted by the JSON Schema: a pattern that does not compile as a JavaScript
 * RegExp, two checks of one name in a phase, an unknown placeholder in a command.
 */
const HEALTHCHECKS_INEXPRESSIBLE = [
  'post:\n  - name: body\n    http:\n      bodyMatches: "(unclosed"\n',
  'pre:\n  - name: up\n    tcp: {}\n  - name: up\n    http: {}\n',
  'pre:\n  - name: files\n    command: { run: "test -f {root}/server.mjs" }\n',
];

test('health-check files: the JSON Schema accepts and refuses what the zod schema does; an invalid bodyMatches is the listed exception', async () => {
  for (const text of HEALTHCHECKS_VALID) assert.ok(zodAccepts('healthchecks', yamlData(text)!.data), `zod refuses:\n${text}`);
  for (const text of [...HEALTHCHECKS_BROKEN, ...HEALTHCHECKS_INEXPRESSIBLE]) assert.ok(!zodAccepts('healthchecks', yamlData(text)!.data), `zod accepts:\n${text}`);
  for (const text of HEALTHCHECKS_VALID) assert.ok(jsonValidators.healthchecks(yamlData(text)!.data), `the JSON Schema refuses:\n${text}`);
  for (const text of HEALTHCHECKS_BROKEN) assert.ok(!jsonValidators.healthchecks(yamlData(text)!.data), `the JSON Schema accepts:\n${text}`);
  for (const text of HEALTHCHECKS_INEXPRESSIBLE) assert.ok(jsonValidators.healthchecks(yamlData(text)!.data), `now refused by the JSON Schema too; remove it from the exceptions:\n${text}`);
});
