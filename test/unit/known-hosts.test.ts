import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  fingerprint, hostLookupName, keyTypeOf, KnownHosts, matchesHost, parseKnownHosts,
} from '../../src/transport/known-hosts.js';

/** A public key made by ssh-keygen: the known_hosts fields, the decoded blob and ssh-keygen's own fingerprint. */
interface RealKey { type: string; base64: string; blob: Buffer; sshKeygenFingerprint: string }

const dir = mkdtempSync(join(tmpdir(), 'updateserver-known-hosts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let keyCount = 0;
function makeKey(type: 'ed25519' | 'ecdsa'): RealKey {
  const file = join(dir, `key${keyCount++}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'test', '-f', file]);
  const [keyType, base64] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ');
  // "256 SHA256:... test (ED25519)"
  const printed = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1];
  assert.ok(keyType && base64 && printed);
  return { type: keyType, base64, blob: Buffer.from(base64, 'base64'), sshKeygenFingerprint: printed };
}

/** What OpenSSH itself says: does `ssh-keygen -F name` find the entry written with these patterns? */
function openSshMatches(patterns: string, name: string, key: RealKey): boolean {
  const file = join(dir, 'oracle');
  writeFileSync(file, `${patterns} ${key.type} ${key.base64}\n`);
  return spawnSync('ssh-keygen', ['-F', name, '-f', file], { stdio: 'ignore' }).status === 0;
}

/** A hashed host field computed the way OpenSSH does: |1|base64(salt)|base64(HMAC-SHA1(salt, name)). */
function hashHost(name: string, salt = randomBytes(20)): string {
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

let k1: RealKey;
let k2: RealKey;
let k3: RealKey;
let kCa: RealKey;
let kRevoked: RealKey;
let kEcdsa: RealKey;

before(() => {
  k1 = makeKey('ed25519');
  k2 = makeKey('ed25519');
  k3 = makeKey('ed25519');
  kCa = makeKey('ed25519');
  kRevoked = makeKey('ed25519');
  kEcdsa = makeKey('ecdsa');
});

describe('parseKnownHosts', () => {
  test('reads plain, comma-separated, [host]:port and hashed entries with 1-based line numbers, skipping comments and blank lines', () => {
    const text = [
      '# managed by hand',                                  // 1
      '',                                                    // 2
      `web1.example.com,10.0.0.1 ${k1.type} ${k1.base64} a comment`, // 3
      '   ',                                                 // 4
      `[web2.example.com]:2222 ${k2.type} ${k2.base64}`,      // 5
      `  |1|EZ9vUXqtrS5wtdQJHPw2nnrLV8A=|Wg0632Aj1dqdxLkRkkn0SaNIuvk= ${k3.type} ${k3.base64}`, // 6
      '    # indented comment',                              // 7
    ].join('\n');
    const entries = parseKnownHosts(text);
    assert.deepEqual(entries.map((e) => [e.line, e.patterns, e.keyType, e.revoked]), [
      [3, 'web1.example.com,10.0.0.1', 'ssh-ed25519', false],
      [5, '[web2.example.com]:2222', 'ssh-ed25519', false],
      [6, '|1|EZ9vUXqtrS5wtdQJHPw2nnrLV8A=|Wg0632Aj1dqdxLkRkkn0SaNIuvk=', 'ssh-ed25519', false],
    ]);
    assert.ok(entries[0]?.key.equals(k1.blob));
    assert.ok(entries[2]?.key.equals(k3.blob));
  });

  test('marks @revoked entries and ignores @cert-authority ones (they must never vouch for a host)', () => {
    const entries = parseKnownHosts([
      `@cert-authority *.example.com ${kCa.type} ${kCa.base64}`,
      `@revoked * ${kRevoked.type} ${kRevoked.base64}`,
    ].join('\n'));
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.revoked, true);
    assert.equal(entries[0]?.patterns, '*');
    assert.equal(entries[0]?.line, 2);
  });

  test('skips lines with missing fields', () => {
    assert.deepEqual(parseKnownHosts('host-only\nhost ssh-ed25519\n@revoked host ssh-ed25519\n'), []);
  });

  test('CRLF line endings keep line numbers and keys intact', () => {
    const entries = parseKnownHosts(`# c\r\n\r\nh1 ${k1.type} ${k1.base64}\r\n`);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.line, 3);
    assert.ok(entries[0]?.key.equals(k1.blob));
  });
});

describe('hostLookupName', () => {
  test('is the bare host on port 22 and [host]:port otherwise', () => {
    assert.equal(hostLookupName('web1.example.com', 22), 'web1.example.com');
    assert.equal(hostLookupName('10.0.0.1', 2222), '[10.0.0.1]:2222');
    assert.equal(hostLookupName('::1', 22), '::1');
    assert.equal(hostLookupName('::1', 2200), '[::1]:2200');
  });
});

describe('matchesHost', () => {
  // [patterns, name, expected]; each case is also checked against OpenSSH's own matcher (ssh-keygen -F).
  const cases: [string, string, boolean][] = [
    ['web1.example.com', 'web1.example.com', true],
    ['web1.example.com', 'web2.example.com', false],
    ['web1.example.com', 'web1Xexample.com', false],
    ['WEB1.example.com', 'web1.example.com', true],
    ['web1.example.com,10.0.0.1', '10.0.0.1', true],
    ['web1.example.com,10.0.0.1', 'web1.example.com', true],
    ['web1.example.com,10.0.0.1', '10.0.0.2', false],
    ['[10.0.0.1]:2222', '[10.0.0.1]:2222', true],
    ['[10.0.0.1]:2222', '10.0.0.1', false],
    ['[10.0.0.1]:2222', '[10.0.0.1]:2223', false],
    ['[10.0.0.1]:2222', '1:2222', false],
    ['[web2.example.com]:2222,[10.0.0.2]:2222', '[10.0.0.2]:2222', true],
    ['[*.example.com]:2222', '[a.example.com]:2222', true],
    ['[*.example.com]:2222', 'a.example.com', false],
    ['10.0.0.1', '[10.0.0.1]:2222', false],
    ['*.internal', 'app.internal', true],
    ['*.internal', 'internal', false],
    ['*.internal,!bad.internal', 'app.internal', true],
    ['*.internal,!bad.internal', 'bad.internal', false],
    ['!bad.internal,*.internal', 'bad.internal', false],
    ['!bad.internal', 'good.internal', false],
    ['web?', 'web1', true],
    ['web?', 'web12', false],
    ['10.0.0.*', '10.0.0.17', true],
    ['h+x', 'h+x', true],
    ['h+x', 'hhx', false],
    ['*', '[h]:2222', true],
  ];
  for (const [patterns, name, expected] of cases) {
    test(`${JSON.stringify(patterns)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => {
      assert.equal(openSshMatches(patterns, name, k1), expected, 'the expectation agrees with OpenSSH');
      assert.equal(matchesHost(patterns, name), expected);
    });
  }

  test('a hashed field matches exactly the name it was hashed from', () => {
    const field = hashHost('[web2.example.com]:2222');
    assert.equal(matchesHost(field, '[web2.example.com]:2222'), true);
    assert.equal(matchesHost(field, 'web2.example.com'), false);
    assert.equal(matchesHost(field, '[web2.example.com]:2223'), false);
  });

  test('a line hashed by ssh-keygen -H (stored fixture) matches the HMAC computed here', () => {
    // Made with: echo "[web2.example.com]:2222 ssh-ed25519 ..." > f && ssh-keygen -H -f f
    const field = '|1|EZ9vUXqtrS5wtdQJHPw2nnrLV8A=|Wg0632Aj1dqdxLkRkkn0SaNIuvk=';
    assert.equal(field, hashHost('[web2.example.com]:2222', Buffer.from('EZ9vUXqtrS5wtdQJHPw2nnrLV8A=', 'base64')));
    assert.equal(matchesHost(field, '[web2.example.com]:2222'), true);
    assert.equal(matchesHost(field, 'web2.example.com'), false);
  });

  test('a hashed field with another magic or missing parts matches nothing', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update('h').digest('base64');
    assert.equal(matchesHost(`|2|${salt.toString('base64')}|${hash}`, 'h'), false);
    assert.equal(matchesHost(`|1|${salt.toString('base64')}`, 'h'), false);
  });
});

describe('lines hashed by a real ssh-keygen -H', () => {
  test('are parsed and verified for every name they were made from, and only those', () => {
    const file = join(dir, 'hashed_known_hosts');
    writeFileSync(file, [
      `web1.example.com,10.0.0.1 ${k1.type} ${k1.base64}`,
      `[web2.example.com]:2222 ${k2.type} ${k2.base64}`,
    ].join('\n') + '\n');
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    rmSync(`${file}.old`, { force: true });
    const known = KnownHosts.load(file);
    const entries = parseKnownHosts(readFileSync(file, 'utf8'));
    assert.equal(entries.length, 3, 'ssh-keygen -H writes one hashed line per name');
    for (const e of entries) assert.match(e.patterns, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+$/);

    assert.deepEqual(known.verify('web1.example.com', 22, k1.blob), { ok: true });
    assert.deepEqual(known.verify('10.0.0.1', 22, k1.blob), { ok: true });
    assert.deepEqual(known.verify('web2.example.com', 2222, k2.blob), { ok: true });
    assert.equal(known.verify('web2.example.com', 22, k2.blob).ok, false);
    assert.equal(known.verify('web1.example.com', 2222, k1.blob).ok, false);
    assert.equal(known.verify('10.0.0.2', 22, k1.blob).ok, false);
    const changed = known.verify('web2.example.com', 2222, k1.blob);
    assert.deepEqual(changed, { ok: false, reason: 'changed', line: 3, fingerprint: k1.sshKeygenFingerprint, keyType: 'ssh-ed25519' });
  });

  test('a line hashed here is accepted by OpenSSH too (ssh-keygen -F finds it)', () => {
    const file = join(dir, 'own_hashed');
    writeFileSync(file, `${hashHost('[web3.example.com]:2200')} ${k1.type} ${k1.base64}\n`);
    assert.equal(spawnSync('ssh-keygen', ['-F', '[web3.example.com]:2200', '-f', file], { stdio: 'ignore' }).status, 0);
    assert.deepEqual(KnownHosts.load(file).verify('web3.example.com', 2200, k1.blob), { ok: true });
  });
});

describe('KnownHosts.verify', () => {
  let known: KnownHosts;
  before(() => {
    known = new KnownHosts('/test/known_hosts', parseKnownHosts([
      '# fleet',                                                   // 1
      `web1.example.com,10.0.0.1 ${k1.type} ${k1.base64}`,         // 2
      `[web2.example.com]:2222 ${k2.type} ${k2.base64}`,           // 3
      `*.internal,!bad.internal ${k3.type} ${k3.base64}`,          // 4
      `@cert-authority *.example.com ${kCa.type} ${kCa.base64}`,   // 5
      `oldhost ${kRevoked.type} ${kRevoked.base64}`,               // 6
      `@revoked * ${kRevoked.type} ${kRevoked.base64}`,            // 7
      '',                                                          // 8
      `web1.example.com ${kEcdsa.type} ${kEcdsa.base64}`,          // 9
    ].join('\n')));
  });

  test('ok for the listed key under every listed name', () => {
    assert.deepEqual(known.verify('web1.example.com', 22, k1.blob), { ok: true });
    assert.deepEqual(known.verify('10.0.0.1', 22, k1.blob), { ok: true });
    assert.deepEqual(known.verify('web1.example.com', 22, kEcdsa.blob), { ok: true });
    assert.deepEqual(known.verify('web2.example.com', 2222, k2.blob), { ok: true });
    assert.deepEqual(known.verify('app.internal', 22, k3.blob), { ok: true });
  });

  test('changed, with the line of the entry it contradicts, when another key of the same type is listed', () => {
    assert.deepEqual(known.verify('web1.example.com', 22, k2.blob), {
      ok: false, reason: 'changed', line: 2, fingerprint: k2.sshKeygenFingerprint, keyType: 'ssh-ed25519',
    });
    assert.deepEqual(known.verify('web2.example.com', 2222, k1.blob), {
      ok: false, reason: 'changed', line: 3, fingerprint: k1.sshKeygenFingerprint, keyType: 'ssh-ed25519',
    });
  });

  test('unknown (no line) when nothing is listed for the host, the port differs, or a negation excludes it', () => {
    const unknown = (fp: string, keyType = 'ssh-ed25519') => ({ ok: false, reason: 'unknown', fingerprint: fp, keyType });
    assert.deepEqual(known.verify('web9.example.com', 22, k1.blob), unknown(k1.sshKeygenFingerprint));
    assert.deepEqual(known.verify('web1.example.com', 2222, k1.blob), unknown(k1.sshKeygenFingerprint));
    assert.deepEqual(known.verify('web2.example.com', 22, k2.blob), unknown(k2.sshKeygenFingerprint));
    assert.deepEqual(known.verify('bad.internal', 22, k3.blob), unknown(k3.sshKeygenFingerprint));
  });

  test('unknown when only keys of other types are listed for the host', () => {
    const v = known.verify('app.internal', 22, kEcdsa.blob);
    assert.deepEqual(v, { ok: false, reason: 'unknown', fingerprint: kEcdsa.sshKeygenFingerprint, keyType: 'ecdsa-sha2-nistp256' });
  });

  test('@cert-authority never vouches for a host', () => {
    const v = known.verify('ca.example.com', 22, kCa.blob);
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.reason, 'unknown');
  });

  test('@revoked refuses the key even where a plain line lists it, naming the @revoked line', () => {
    assert.deepEqual(known.verify('oldhost', 22, kRevoked.blob), {
      ok: false, reason: 'revoked', line: 7, fingerprint: kRevoked.sshKeygenFingerprint, keyType: 'ssh-ed25519',
    });
    const v = known.verify('web1.example.com', 22, kRevoked.blob);
    assert.equal(!v.ok && v.reason, 'revoked');
  });

  test('a missing file trusts nothing', () => {
    const empty = KnownHosts.load(join(dir, 'does-not-exist'));
    assert.equal(empty.file, join(dir, 'does-not-exist'));
    assert.deepEqual(empty.verify('web1.example.com', 22, k1.blob), {
      ok: false, reason: 'unknown', fingerprint: k1.sshKeygenFingerprint, keyType: 'ssh-ed25519',
    });
    assert.deepEqual(empty.keyTypesFor('web1.example.com', 22), []);
  });

  test('KnownHosts.load reads the file from disk', () => {
    const file = join(dir, 'plain_known_hosts');
    writeFileSync(file, `# x\n[10.0.0.5]:2222 ${k2.type} ${k2.base64}\n`);
    const loaded = KnownHosts.load(file);
    assert.deepEqual(loaded.verify('10.0.0.5', 2222, k2.blob), { ok: true });
    const v = loaded.verify('10.0.0.5', 2222, k1.blob);
    assert.equal(!v.ok && v.reason, 'changed');
    assert.equal(!v.ok && v.line, 2);
  });
});

describe('KnownHosts.keyTypesFor', () => {
  test('lists the key types of the host\'s entries once each, in file order, without revoked or CA lines', () => {
    const known = new KnownHosts('/x', parseKnownHosts([
      `web1 ${kEcdsa.type} ${kEcdsa.base64}`,
      `web1,web2 ${k1.type} ${k1.base64}`,
      `web1 ${k2.type} ${k2.base64}`,
      `@cert-authority web3 ${kCa.type} ${kCa.base64}`,
      `@revoked web3 ${kRevoked.type} ${kRevoked.base64}`,
      `[web1]:2222 ${k3.type} ${k3.base64}`,
    ].join('\n')));
    assert.deepEqual(known.keyTypesFor('web1', 22), ['ecdsa-sha2-nistp256', 'ssh-ed25519']);
    assert.deepEqual(known.keyTypesFor('web2', 22), ['ssh-ed25519']);
    assert.deepEqual(known.keyTypesFor('web3', 22), []);
    assert.deepEqual(known.keyTypesFor('web1', 2222), ['ssh-ed25519']);
    assert.deepEqual(known.keyTypesFor('web4', 22), []);
  });
});

describe('fingerprint and keyTypeOf', () => {
  test('fingerprint equals what ssh-keygen -lf prints for a real ed25519 key', () => {
    assert.match(k1.sshKeygenFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal(fingerprint(k1.blob), k1.sshKeygenFingerprint);
    assert.equal(fingerprint(k2.blob), k2.sshKeygenFingerprint);
  });

  test('fingerprint equals ssh-keygen -lf for an ecdsa key too', () => {
    assert.equal(fingerprint(kEcdsa.blob), kEcdsa.sshKeygenFingerprint);
  });

  test('keyTypeOf reads the type from inside the blob', () => {
    assert.equal(keyTypeOf(k1.blob), 'ssh-ed25519');
    assert.equal(keyTypeOf(kEcdsa.blob), 'ecdsa-sha2-nistp256');
    assert.equal(keyTypeOf(Buffer.from([0, 0])), 'unknown');
  });
});
