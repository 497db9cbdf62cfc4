import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { LoadBalancerError } from '../../src/errors.js';
import {
  Haproxy, parseShowInfo, serverHealthCommand, serverStateCommand, shutdownSessionsCommand, SHOW_INFO, SHOW_STAT,
} from '../../src/lb/haproxy.js';
import { RuntimeClient } from '../../src/lb/runtime-client.js';

/**
 * A Haproxy whose connections are in-memory streams, as an SSH forward would hand them over: each
 * command gets the reply `answer` gives for it, then the stream ends as HAProxy closes the connection.
 */
function scripted(answer: (line: string) => string): { haproxy: Haproxy; sent: string[] } {
  const sent: string[] = [];
  const connect = async (): Promise<Duplex> => new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      const line = chunk.toString().replace(/\n$/, '');
      sent.push(line);
      this.push(answer(line));
      this.push(null);
      callback();
    },
  });
  return { haproxy: new Haproxy(new RuntimeClient({ name: 'lb1', connect, timeoutMs: 1000 })), sent };
}

const STAT = [
  '# pxname,svname,qcur,qmax,scur,smax,status,type,',
  'web,FRONTEND,,,7,9,OPEN,0,',
  'web_a,h1,1,1,3,4,UP,2,',
  'web_a,h2,0,0,2,4,DRAIN,2,',
  'web_a,BACKEND,4,4,5,8,UP,1,',
  'web_b,h1,0,0,0,0,UP,2,',
  'web_b,BACKEND,0,0,0,0,UP,1,',
  '',
].join('\n') + '\n';

describe('server commands', () => {
  test('are built exactly', () => {
    assert.equal(serverHealthCommand('web_a', 'h1', 'up'), 'set server web_a/h1 health up');
    assert.equal(serverHealthCommand('web_b', 'h2', 'down'), 'set server web_b/h2 health down');
    assert.equal(serverStateCommand('web_a', 'h1', 'ready'), 'set server web_a/h1 state ready');
    assert.equal(serverStateCommand('web_a', 'h1', 'drain'), 'set server web_a/h1 state drain');
    assert.equal(serverStateCommand('web_a', 'h1', 'maint'), 'set server web_a/h1 state maint');
    assert.equal(shutdownSessionsCommand('web_a', 'h1'), 'shutdown sessions server web_a/h1');
    assert.equal(SHOW_STAT, 'show stat');
    assert.equal(SHOW_INFO, 'show info');
  });

  test('refuse names that would split or chain the command', () => {
    assert.throws(() => serverStateCommand('web_a h1', 'h1', 'drain'), RangeError);
    assert.throws(() => shutdownSessionsCommand('web_a', 'h1;show'), RangeError);
  });
});

describe('parseShowInfo', () => {
  test('reads "Name: value" lines, values keeping their own colons', () => {
    assert.deepEqual(parseShowInfo('Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nUptime: 0d 0h01m13s\nnode: lb:1\n\n'),
      { Name: 'HAProxy', Version: '2.6.12-1+deb12u4', Uptime: '0d 0h01m13s', node: 'lb:1' });
  });
});

describe('Haproxy', () => {
  test('setMap updates an existing key with one command', async () => {
    const { haproxy, sent } = scripted(() => '\n');
    assert.equal(await haproxy.setMap('/m.map', 'web', 'web_b'), 'updated');
    assert.deepEqual(sent, ['set map /m.map web web_b']);
  });

  test('setMap adds a key the map does not have ("entry not found.")', async () => {
    const { haproxy, sent } = scripted((line) => (line.startsWith('set map') ? 'entry not found.\n\n' : '\n'));
    assert.equal(await haproxy.setMap('/m.map', 'api', 'api_a'), 'added');
    assert.deepEqual(sent, ['set map /m.map api api_a', 'add map /m.map api api_a']);
  });

  test('setMap on an unknown map throws, and adds nothing', async () => {
    const { haproxy, sent } = scripted(() => 'Unknown map identifier. Please use #<id> or <file>.\n\n');
    await assert.rejects(haproxy.setMap('/nope.map', 'web', 'web_b'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.message, 'load balancer lb1: HAProxy refused "set map /nope.map web web_b": Unknown map identifier. Please use #<id> or <file>.');
      return true;
    });
    assert.deepEqual(sent, ['set map /nope.map web web_b']);
  });

  test('server changes send their command and turn a refusal into a LoadBalancerError', async () => {
    const { haproxy, sent } = scripted((line) => (line.includes('web_x/') ? 'No such backend.\n\n' : '\n'));
    await haproxy.serverState('web_a', 'h1', 'drain');
    await haproxy.serverHealth('web_a', 'h1', 'down');
    await haproxy.shutdownSessions('web_a', 'h1');
    await assert.rejects(haproxy.serverState('web_x', 'h1', 'maint'), { name: 'LoadBalancerError', message: /No such backend\.$/ });
    assert.deepEqual(sent, [
      'set server web_a/h1 state drain', 'set server web_a/h1 health down', 'shutdown sessions server web_a/h1', 'set server web_x/h1 state maint',
    ]);
  });

  test('sessions sums scur + qcur of the servers and the queue of the backend itself', async () => {
    const { haproxy } = scripted(() => STAT);
    assert.equal(await haproxy.sessions('web_a'), (3 + 1) + (2 + 0) + 4);
    assert.equal(await haproxy.sessions('web_b'), 0);
    await assert.rejects(haproxy.sessions('api_a'), { name: 'LoadBalancerError', message: 'load balancer lb1: backend api_a is not in show stat' });
  });

  test('a reply that cannot be parsed names the command', async () => {
    const { haproxy } = scripted(() => 'something else\n');
    await assert.rejects(haproxy.showStat(), {
      name: 'LoadBalancerError',
      message: /^load balancer lb1: cannot read the reply to "show stat": expected the "# pxname,svname,\.\.\." header/,
    });
  });

  test('showMap and info parse their replies', async () => {
    const { haproxy } = scripted((line) => (line === 'show info' ? 'Name: HAProxy\nVersion: 2.6.12\n\n' : '0x55f0 web web_a\n\n'));
    assert.deepEqual(await haproxy.showMap('/m.map'), [{ key: 'web', value: 'web_a' }]);
    assert.equal((await haproxy.info()).Version, '2.6.12');
  });
});
