/*
 * The broken-profile corpus: every case under test/fixtures/profiles/broken/<case>/ is a tiny project
 * whose profile is wrong in exactly one way. Each must be refused with a ConfigError (exit status 2)
 * that names the file and the path, says what is wrong and, where the problem is on a line of the
 * file, points at that line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadPipeline } from '../../src/config/load.js';
import { checkMigrationFiles } from '../../src/config/migration-files.js';
import { ConfigError, EXIT_BAD_INPUT } from '../../src/errors.js';

/** Compiled to dist/test/unit/, so the repository is three levels up. */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CORPUS = join(REPO, 'test', 'fixtures', 'profiles', 'broken');

interface Case {
  /** Directory under the corpus: the project. */
  case: string;
  /** The stage asked for (loadPipeline follows from: from there). */
  stage: string;
  /** The issue expected among those reported: exactly this file and path ... */
  file: string;
  path: string;
  /** ... a message containing this ... */
  message: string;
  /** ... and, where the problem sits on a line of the file, that line. */
  line?: number;
}

const CASES: Case[] = [
  { case: "type-port-string", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.a.port", message: "expected an integer 1-65535", line: 16 },
  { case: "type-service-hosts-string", stage: "prod", file: "profiles/prod.yaml", path: "services.web.hosts", message: "expected a list of host names", line: 12 },
  { case: "type-services-list", stage: "prod", file: "profiles/prod.yaml", path: "services", message: "expected a map of service name to service", line: 10 },
  { case: "type-keep-releases-string", stage: "prod", file: "profiles/prod.yaml", path: "keepReleases", message: "expected an integer, found the text", line: 19 },
  { case: "type-start-number", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "expected a shell command", line: 18 },
  { case: "unknown-key-top", stage: "prod", file: "profiles/prod.yaml", path: "retries", message: "allowed here: from, source, releaseName, ssh, hosts, loadBalancers, services, parallel, serial, keepReleases", line: 19 },
  { case: "unknown-key-ssh", stage: "prod", file: "profiles/prod.yaml", path: "ssh.password", message: "allowed here: user, port, key, knownHosts, connectTimeoutMs, commandTimeoutMs", line: 6 },
  { case: "unknown-key-host", stage: "prod", file: "profiles/prod.yaml", path: "hosts.web1.ip", message: "allowed here: address, user, port, key", line: 5 },
  { case: "unknown-key-load-balancer", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.lb.stats", message: "allowed here: socket, mapFile, host, address, timeoutMs", line: 10 },
  { case: "unknown-key-service", stage: "prod", file: "profiles/prod.yaml", path: "services.web.user", message: "allowed here: hosts, root, listen, mode, instances, after, files, shared, currentLink, slots, start, build, stop, stopTimeoutMs, exclude, database, releaseName, configFiles, checks, health, drainTimeoutMs", line: 14 },
  { case: "unknown-key-slots", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.c", message: "allowed here: a, b", line: 18 },
  { case: "unknown-key-slot", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.a.weight", message: "allowed here: port, ports, dir", line: 16 },
  { case: "unknown-key-health", stage: "prod", file: "profiles/prod.yaml", path: "services.web.health.url", message: "allowed here: path, expectStatus, attemptTimeoutMs, intervalMs, deadlineMs", line: 20 },
  { case: "unknown-key-source", stage: "prod", file: "profiles/prod.yaml", path: "source.branch", message: "allowed here: path", line: 4 },
  { case: "missing-start", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "expected a shell command", line: 11 },
  { case: "missing-root", stage: "prod", file: "profiles/prod.yaml", path: "services.web.root", message: "expected an absolute path", line: 11 },
  { case: "missing-host-address", stage: "prod", file: "profiles/prod.yaml", path: "hosts.web1.address", message: "expected a host name or IP address", line: 5 },
  { case: "missing-lb-socket", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.lb.socket", message: "expected a file path", line: 7 },
  { case: "missing-hosts", stage: "prod", file: "profiles/prod.yaml", path: "hosts", message: "expected a map of host name to host" },
  { case: "port-out-of-range", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.b.port", message: "expected an integer 1-65535", line: 17 },
  { case: "port-zero", stage: "prod", file: "profiles/prod.yaml", path: "services.web.listen", message: "expected an integer 1-65535", line: 14 },
  { case: "port-not-integer", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.a.port", message: "expected an integer 1-65535", line: 16 },
  { case: "port-ssh-out-of-range", stage: "prod", file: "profiles/prod.yaml", path: "ssh.port", message: "expected an integer 1-65535", line: 5 },
  { case: "port-duplicate-slots", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.b.port", message: "port 8001 on host \"web1\" is already used by services.web.slots.a", line: 17 },
  { case: "port-duplicate-services", stage: "prod", file: "profiles/prod.yaml", path: "services.api.slots.a.port", message: "port 8002 on host \"web1\" is already used by services.web.slots.b", line: 24 },
  { case: "port-listen-duplicate", stage: "prod", file: "profiles/prod.yaml", path: "services.api.listen", message: "already the listen port of service \"web\"", line: 22 },
  { case: "port-listen-on-lb-host", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.b.port", message: "is its listen port", line: 18 },
  { case: "slots-share-dir", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.b.dir", message: "directory /srv/web/current on host \"web1\" is already used by services.web.slots.a", line: 17 },
  { case: "slot-dir-is-root", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.a.dir", message: "the service's root", line: 16 },
  { case: "slot-dir-is-releases", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.b.dir", message: "reserved for the service's releases", line: 17 },
  { case: "slot-dir-in-run", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.a.dir", message: "reserved for the service's releases and run files", line: 16 },
  { case: "root-shared-by-services", stage: "prod", file: "profiles/prod.yaml", path: "services.api.root", message: "root /srv/web on host \"web1\" is already used by services.web.root", line: 21 },
  { case: "root-relative", stage: "prod", file: "profiles/prod.yaml", path: "services.web.root", message: "expected an absolute path", line: 13 },
  { case: "path-with-space", stage: "prod", file: "profiles/prod.yaml", path: "services.web.root", message: "expected an absolute path of letters, digits", line: 13 },
  { case: "slot-dir-with-subshell", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots.a.dir", message: "expected an absolute path", line: 16 },
  { case: "stage-name-semicolon", stage: "web;rm -rf", file: "profiles/web;rm -rf.yaml", path: "", message: "is not a valid stage name" },
  { case: "stage-name-subshell", stage: "$(x)", file: "profiles/$(x).yaml", path: "", message: "is not a valid stage name" },
  { case: "stage-name-space", stage: "my stage", file: "profiles/my stage.yaml", path: "", message: "is not a valid stage name" },
  { case: "stage-name-uppercase", stage: "Beta", file: "profiles/Beta.yaml", path: "", message: "is not a valid stage name" },
  { case: "host-name-semicolon", stage: "prod", file: "profiles/prod.yaml", path: "hosts.web;rm -rf /", message: "invalid name: expected a name of lowercase letters", line: 5 },
  { case: "host-name-uppercase", stage: "prod", file: "profiles/prod.yaml", path: "hosts.Web1", message: "invalid name: expected a name of lowercase letters", line: 5 },
  { case: "service-name-subshell", stage: "prod", file: "profiles/prod.yaml", path: "services.$(x)", message: "invalid name: expected a name of lowercase letters", line: 11 },
  { case: "service-name-space", stage: "prod", file: "profiles/prod.yaml", path: "services.web app", message: "invalid name", line: 11 },
  { case: "lb-name-semicolon", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.lb;rm -rf /", message: "invalid name", line: 7 },
  { case: "lb-name-uppercase", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.LB", message: "invalid name", line: 7 },
  { case: "service-host-ref-space", stage: "prod", file: "profiles/prod.yaml", path: "services.web.hosts.0", message: "expected a name of lowercase letters", line: 12 },
  { case: "start-multiline", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "the value holds a line break; only one line is allowed here", line: 18 },
  { case: "start-unknown-placeholder", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "unknown placeholder {name} (allowed: {stage} {service} {host} {address} {slot} {port} {dir} {release} {config} {database} {instance} {files} {snapshot})", line: 18 },
  { case: "stop-unknown-placeholder", stage: "prod", file: "profiles/prod.yaml", path: "services.web.stop", message: "unknown placeholder {pid}", line: 19 },
  { case: "service-unknown-host", stage: "prod", file: "profiles/prod.yaml", path: "services.web.hosts.1", message: "unknown host \"web2\"", line: 12 },
  { case: "service-host-twice", stage: "prod", file: "profiles/prod.yaml", path: "services.web.hosts.1", message: "host \"web1\" is listed twice", line: 14 },
  { case: "lb-unknown-host", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.lb.host", message: "unknown host \"haproxy1\"", line: 10 },
  { case: "lb-shared-socket", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.lb2.socket", message: "already used by load balancer \"lb\"", line: 11 },
  { case: "no-load-balancer", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers", message: "expected at least one load balancer" },
  { case: "from-itself", stage: "prod", file: "profiles/prod.yaml", path: "from", message: "cannot promote from itself", line: 2 },
  { case: "from-unknown-stage", stage: "prod", file: "profiles/prod.yaml", path: "from", message: "unknown stage \"staging\"", line: 2 },
  { case: "from-invalid-name", stage: "prod", file: "profiles/prod.yaml", path: "from", message: "expected a name of lowercase letters", line: 2 },
  { case: "from-circular", stage: "a", file: "profiles/b.yaml", path: "from", message: "circular \"from:\" chain: a -> b -> a", line: 4 },
  { case: "from-broken-previous", stage: "beta", file: "profiles/dev.yaml", path: "services.web.listen", message: "expected an integer 1-65535", line: 14 },
  { case: "from-and-source", stage: "prod", file: "profiles/prod.yaml", path: "source", message: "not both", line: 3 },
  { case: "neither-from-nor-source", stage: "prod", file: "profiles/prod.yaml", path: "from", message: "expected \"from: <previous stage>\"" },
  { case: "yaml-syntax-error", stage: "prod", file: "profiles/prod.yaml", path: "", message: "invalid YAML", line: 13 },
  { case: "yaml-duplicate-key", stage: "prod", file: "profiles/prod.yaml", path: "services.web.listen", message: "the key \"listen\" is given twice in this map (first on line 14)", line: 15 },
  { case: "empty-file", stage: "prod", file: "profiles/prod.yaml", path: "", message: "the file is empty" },
  { case: "top-level-list", stage: "prod", file: "profiles/prod.yaml", path: "", message: "found a list", line: 2 },
  { case: "state-password-in-url", stage: "prod", file: "profiles/prod.yaml", path: "state.postgres", message: "the password goes in passwordEnv, never in the URL", line: 5 },
  { case: "state-differs-from-previous", stage: "beta", file: "profiles/beta.yaml", path: "state", message: "beta keeps its state in PostgreSQL postgres://updateserver@db.internal:5432/releases but dev (its from:, profiles/dev.yaml) in the local state directory: stages linked by from: must name the same state store" },
  { case: "stage-not-found", stage: "prod", file: "profiles/prod.yaml", path: "", message: "no such profile" },
  // issue 15, one or more of each kind: names every object has, control characters, YAML limits, not a
  // file, migrations (checked with the profiles, before any connection), messages in the house style
  { case: "names-object-member-host-ref", stage: "prod", file: "profiles/prod.yaml", path: "services.web.hosts.1", message: "\"constructor\" is the name of a member of every JavaScript object", line: 12 },
  { case: "names-proto-key", stage: "prod", file: "profiles/prod.yaml", path: "hosts.__proto__", message: "\"__proto__\" is the name of a member of every JavaScript object", line: 6 },
  { case: "control-start-carriage-return", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "the value holds the control character U+000D (carriage return)", line: 18 },
  { case: "control-start-line-separator", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "the value holds the control character U+2028 (line separator)", line: 18 },
  { case: "control-start-escape-sequence", stage: "prod", file: "profiles/prod.yaml", path: "services.web.start", message: "the value holds the control character U+001B (ESC)", line: 18 },
  { case: "control-path-nul", stage: "prod", file: "profiles/prod.yaml", path: "loadBalancers.lb.socket", message: "the value holds the control character U+0000 (NUL)", line: 8 },
  { case: "yaml-alias-bomb", stage: "prod", file: "profiles/prod.yaml", path: "", message: "aliases (*name) expand to too much data" },
  { case: "yaml-deep-nesting", stage: "prod", file: "profiles/prod.yaml", path: "x.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", message: "nested deeper than 32 levels", line: 19 },
  { case: "profile-is-directory", stage: "prod", file: "profiles/prod.yaml", path: "", message: "is a directory, not a file" },
  { case: "migration-misnamed", stage: "prod", file: "migrations/web/V0002-add-index.sql", path: "", message: "not a migration: expected a file named like V0003__add_index.sql" },
  { case: "migration-version-twice", stage: "prod", file: "migrations/web/V1__create_again.sql", path: "", message: "version 1 is defined twice (also in migrations/web/V0001__create.sql)" },
  { case: "message-jobs-zero", stage: "prod", file: "profiles/prod.yaml", path: "services.web.database.jobs", message: "expected an integer of at least 1, found the integer 0", line: 19 },
  { case: "message-missing-slots", stage: "prod", file: "profiles/prod.yaml", path: "services.web.slots", message: "expected slots a and b", line: 11 },
];

for (const c of CASES) {
  test(`broken profile ${c.case}: ${c.path || c.file} is refused`, async () => {
    const dir = join(CORPUS, c.case);
    assert.ok(existsSync(dir), `missing fixture ${dir}`);
    // As a promotion does before its first connection: the pipeline's profiles, then the target's migration files.
    const project = { dir, stateDir: join(tmpdir(), 'updateserver-corpus-unused') };
    const err = await loadPipeline(project, c.stage).then(
      ([stage]) => checkMigrationFiles(project, stage!).then(() => assert.fail(`${c.case}: the profile was accepted`)),
      (e: unknown) => { throw e; },
    ).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError, `${c.case}: expected a ConfigError, got ${String(err)}`);
    assert.equal(err.exitCode, EXIT_BAD_INPUT);
    const issue = err.issues.find((i) => i.file === c.file && i.path === c.path && i.message.includes(c.message));
    assert.ok(issue, `${c.case}: no issue ${c.file} ${c.path}: ...${c.message}...; got:\n${err.message}`);
    if (c.line !== undefined) assert.equal(issue.line, c.line, `${c.case}: wrong line; got:\n${err.message}`);
    // The message the user reads carries the same: file[:line]: path: message.
    assert.ok(err.message.includes(`${c.file}${c.line === undefined ? '' : `:${c.line}`}: `), err.message);
  });
}

test('the corpus has a case for every fixture directory and at least 30 cases', async () => {
  const { readdir } = await import('node:fs/promises');
  const dirs = (await readdir(CORPUS)).sort();
  assert.deepEqual(dirs, CASES.map((c) => c.case).sort());
  assert.ok(CASES.length >= 30);
});
