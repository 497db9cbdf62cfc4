/*
 * How rsync reaches a host when code is relayed, decided in one place. A run holds an SSH connection
 * to every host it works on, and rsync goes through it (the tunnel, src/transport/tunnel.ts): the
 * host key was checked once, no second handshake per transfer. OpenSSH with the same strict options is
 * the route of a caller without such a connection. The argv built here is the exact argv that runs:
 * the plan prints it, apply executes it. The tunnel's port and token are never in it; they reach the
 * remote shell through rsync's environment (TUNNEL_ENV), by reference.
 */
import type { Host } from '../config/model.js';
import { remoteSpec, rsyncArgv, tunnelSpec } from './rsync.js';
import { TUNNEL_CLIENT_ENV } from '../transport/tunnel-client.js';

export type RelayRoute = 'tunnel' | 'openssh';

/** The route rsync takes to a host: through the run's own SSH connection when it has one. */
export function relayRoute(hasRunConnection: boolean): RelayRoute {
  return hasRunConnection ? 'tunnel' : 'openssh';
}

/**
 * rsync's remote shell on the tunnel route: the tunnel client script, given in the environment, run by
 * bash with rsync's arguments (host, then the remote command) as its own. The same text in every run;
 * run without that environment (outside updateserver) it refuses, as the client does without a token.
 */
export const TUNNEL_RSH = `bash -c 'eval "\${${TUNNEL_CLIENT_ENV}:-echo updateserver tunnel: run by rsync within updateserver only >&2; exit 255}"' updateserver-tunnel`;

/** `user@address:path` for OpenSSH, `<host name>:path` for the tunnel (which knows the host's connection). */
export function relaySpec(route: RelayRoute, host: Host, path: string): string {
  return route === 'tunnel' ? tunnelSpec(host, path) : remoteSpec(host, path);
}

const shellOf = (route: RelayRoute, host: Host) => (route === 'tunnel' ? { rsh: TUNNEL_RSH } : { remote: host });

/** Pushes a cached release to a host's release directory. */
export function pushArgv(route: RelayRoute, host: Host, o: { cacheDir: string; releaseDir: string; linkDest?: string; remoteSetup?: string }): string[] {
  return rsyncArgv({
    source: `${o.cacheDir}/`, destination: relaySpec(route, host, `${o.releaseDir}/`), ...shellOf(route, host),
    ...(o.remoteSetup !== undefined ? { remoteSetup: o.remoteSetup } : {}), ...(o.linkDest !== undefined ? { linkDest: o.linkDest } : {}),
  });
}

/** Pulls the files a list names from a host's release directory into the cache. */
export function pullArgv(route: RelayRoute, host: Host, o: { releaseDir: string; cacheDir: string; filesFrom: string; linkDest?: string }): string[] {
  return rsyncArgv({
    source: relaySpec(route, host, `${o.releaseDir}/`), destination: `${o.cacheDir}/`, ...shellOf(route, host), filesFrom: o.filesFrom,
    ...(o.linkDest !== undefined ? { linkDest: o.linkDest } : {}),
  });
}
