import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadBalancerError } from '../../src/errors.js';
import { expectEmptyReply, expectOutput, recogniseReply, REPLIES, type ReplyKind } from '../../src/lb/replies.js';

/** Replies as HAProxy 2.6.12 sends them (a sentence, then the empty line that ends every answer). */
const CAPTURED: Record<string, ReplyKind> = {
  'No such backend.\n\n': 'noSuchBackend',
  'No such server.\n\n': 'noSuchServer',
  "Require 'backend/server'.\n\n": 'requireBackendServer',
  'Unknown map identifier. Please use #<id> or <file>.\n\n': 'unknownMap',
  'entry not found.\n\n': 'entryNotFound',
  'Permission denied\n\n': 'permissionDenied',
  'Unknown command, but maybe one of the following ones is a better match:\n  add map [@<ver>] <map> <key> <val>      : add a map entry (payload supported instead of key/val)\n  help [<command>]                        : list matching or all commands\n\n': 'unknownCommand',
  "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n": 'setServerState',
  "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n\n": 'setServerHealth',
  "'set map' expects three parameters: map identifier, key and value.\n\n": 'setMapArguments',
  "'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload\n\n": 'addMapArguments',
  'usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | state | weight\n\n': 'setServerUsage',
};

describe('recogniseReply', () => {
  test('knows the refusals of HAProxy 2.6 by their exact text', () => {
    for (const [reply, kind] of Object.entries(CAPTURED)) assert.equal(recogniseReply(reply), kind, reply);
    assert.equal(recogniseReply(`${REPLIES.trackingServer.text}\n\n`), 'trackingServer');
  });

  test('an empty answer (success), output, or a near miss is not a known refusal', () => {
    for (const reply of ['\n', '', '0x55f0 web web_a\n\n', 'No such backend', 'no such backend.\n', 'Name: HAProxy\n']) {
      assert.equal(recogniseReply(reply), undefined, JSON.stringify(reply));
    }
  });
});

describe('expectEmptyReply', () => {
  test('accepts the empty line a successful set/add/shutdown answers', () => {
    expectEmptyReply('lb1', 'set map /m web web_b', '\n');
    expectEmptyReply('lb1', 'set map /m web web_b', '');
  });

  test('throws a LoadBalancerError with the reply text and a hint', () => {
    assert.throws(() => expectEmptyReply('lb1', 'set server web_x/h1 state drain', 'No such backend.\n\n'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.loadBalancer, 'lb1');
      assert.equal(err.message, 'load balancer lb1: HAProxy refused "set server web_x/h1 state drain": No such backend.');
      assert.match(err.hint ?? '', /re-render it and reload HAProxy/);
      return true;
    });
    assert.throws(() => expectEmptyReply('lb1', 'set server web_a/h1 state drain', 'Permission denied\n\n'),
      { message: 'load balancer lb1: HAProxy refused "set server web_a/h1 state drain": Permission denied', hint: REPLIES.permissionDenied.hint });
  });

  test('keeps only the first line of "Unknown command" (the rest lists every command)', () => {
    const reply = Object.keys(CAPTURED).find((r) => r.startsWith('Unknown command')) ?? '';
    assert.throws(() => expectEmptyReply('lb1', 'frobnicate', reply),
      { message: 'load balancer lb1: HAProxy refused "frobnicate": Unknown command, but maybe one of the following ones is a better match:' });
  });

  test('an unknown sentence is still a refusal, without a hint', () => {
    assert.throws(() => expectEmptyReply('lb1', 'set server web_a/h1 health up', 'Something new in 3.x.\nSecond line.\n\n'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.message, 'load balancer lb1: HAProxy refused "set server web_a/h1 health up": Something new in 3.x. / Second line.');
      assert.equal(err.hint, undefined);
      return true;
    });
  });
});

describe('expectOutput', () => {
  test('returns output, throws on a known refusal', () => {
    assert.equal(expectOutput('lb1', 'show map /m', '0x1 web web_a\n\n'), '0x1 web web_a\n\n');
    assert.throws(() => expectOutput('lb1', 'show map /nope', 'Unknown map identifier. Please use #<id> or <file>.\n\n'),
      { message: 'load balancer lb1: HAProxy refused "show map /nope": Unknown map identifier. Please use #<id> or <file>.' });
  });
});
