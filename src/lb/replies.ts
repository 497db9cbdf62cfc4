/*
 * The runtime API has no status codes: a command that worked answers nothing (an empty line), a refusal
 * answers a sentence. These are the sentences HAProxy 2.6 uses for the commands we send, taken from its
 * source (src/server.c, src/map.c, src/cli.c) and checked against HAProxy 2.6.12 by
 * test/integration/haproxy-runtime.test.ts. We match them exactly, so a sentence we do not know is still
 * an error (expectEmptyReply), just without a specific hint.
 */
import { LoadBalancerError } from '../errors.js';

interface KnownReply {
  readonly text: string;
  /** Only the start is fixed (the rest lists commands or choices). */
  readonly prefix?: boolean;
  readonly hint?: string;
}

const STALE_CONFIG = 'the running HAProxy configuration differs from the profile: re-render it and reload HAProxy';

export const REPLIES = {
  noSuchBackend: { text: 'No such backend.', hint: STALE_CONFIG },
  noSuchServer: { text: 'No such server.', hint: STALE_CONFIG },
  requireBackendServer: { text: "Require 'backend/server'." },
  unknownMap: {
    text: 'Unknown map identifier. Please use #<id> or <file>.',
    hint: 'a map is known by the exact path it was loaded from (`show map` lists them): check mapFile in the profile',
  },
  /** `set map` on a key the map does not have; Haproxy.setMap then adds it. */
  entryNotFound: { text: 'entry not found.' },
  permissionDenied: {
    text: 'Permission denied',
    hint: 'the stats socket must be declared with `level admin` (stats socket <path> mode 600 level admin)',
  },
  unknownCommand: {
    text: 'Unknown command',
    prefix: true,
    hint: 'this HAProxy does not know the command: updateserver needs HAProxy 2.x and a `level admin` socket',
  },
  trackingServer: { text: 'cannot change health on a tracking server.' },
  // Usage errors: only a bug in our command builders can cause these.
  setServerState: { text: "'set server <srv> state' expects 'ready', 'drain' and 'maint'." },
  setServerHealth: { text: "'set server <srv> health' expects 'up', 'stopping', or 'down'." },
  setServerUsage: { text: 'usage: set server <backend>/<server>', prefix: true },
  setMapArguments: { text: "'set map' expects three parameters: map identifier, key and value." },
  addMapArguments: {
    text: "'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload",
  },
} as const satisfies Record<string, KnownReply>;

export type ReplyKind = keyof typeof REPLIES;

/** The reply without HAProxy's trailing empty line. */
function trimmed(reply: string): string {
  return reply.replace(/\s+$/, '');
}

/** Which known refusal this reply is, by its first line; undefined for anything else (including success). */
export function recogniseReply(reply: string): ReplyKind | undefined {
  const first = trimmed(reply).split('\n', 1)[0] ?? '';
  for (const [kind, known] of Object.entries(REPLIES) as [ReplyKind, KnownReply][]) {
    if (known.prefix ? first.startsWith(known.text) : first === known.text) return kind;
  }
  return undefined;
}

export function replyError(loadBalancer: string, command: string, reply: string): LoadBalancerError {
  const kind = recogniseReply(reply);
  const lines = trimmed(reply).split('\n');
  // "Unknown command" goes on to list every command; the first line says it all.
  const text = kind === 'unknownCommand' ? lines[0] ?? '' : lines.slice(0, 5).join(' / ');
  const hint = kind === undefined ? undefined : (REPLIES[kind] as KnownReply).hint;
  return new LoadBalancerError(loadBalancer, `HAProxy refused "${command}": ${text}`, hint === undefined ? undefined : { hint });
}

/** For commands that change something: anything but an empty reply is a refusal. */
export function expectEmptyReply(loadBalancer: string, command: string, reply: string): void {
  if (trimmed(reply) !== '') throw replyError(loadBalancer, command, reply);
}

/** For commands that show something: a known refusal throws, any other text is the output. */
export function expectOutput(loadBalancer: string, command: string, reply: string): string {
  if (recogniseReply(reply) !== undefined) throw replyError(loadBalancer, command, reply);
  return reply;
}
