/*
 * Probing the load balancers of a stage, read-only: the runtime API socket answers `show info`, its
 * level is admin (switching needs it), HAProxy knows the map file the profile names, and the map
 * file can be read and rewritten beside itself (the switch persists the map that way).
 */
import { dirname } from 'node:path';
import type { LoadBalancer, Stage } from '../config/model.js';
import { quote } from '../commands/shell.js';
import { describeError, UpdateserverError } from '../errors.js';
import { Haproxy } from '../lb/haproxy.js';
import { localSocket } from '../lb/runtime-client.js';
import { LocalTransport } from '../transport/local.js';
import type { Transport } from '../transport/transport.js';
import { errnoOf, ok, problem, type Finding } from './finding.js';

/** LoadBalancerError messages start with the load balancer's name, which the finding's subject already says. */
const detailOf = (lb: LoadBalancer, err: unknown) => describeError(err).replace(`load balancer ${lb.name}: `, '');

/**
 * Through SSH a failed socket forward says only "open failed": the socket file, looked at on the
 * host, tells why, in the errno a local connect would have given.
 */
export function socketStateCommand(socket: string): string {
  const s = quote(socket);
  return `if [ -S ${s} ]; then if [ -r ${s} ] && [ -w ${s} ]; then echo ECONNREFUSED; else echo EACCES; fi; elif [ -e ${s} ]; then echo ENOTSOCK; else echo ENOENT; fi`;
}

const SOCKET_STATES: Record<string, string> = {
  ENOENT: 'there is no such file', EACCES: 'permission denied', ENOTSOCK: 'it is not a socket', ECONNREFUSED: 'nothing listens on it',
};

function socketFix(stage: Stage, lb: LoadBalancer, code: string | undefined, err: unknown): string | undefined {
  const setting = `loadBalancers.${lb.name}.socket in ${stage.file}`;
  switch (code) {
    case 'ENOENT':
      return `start HAProxy, or set ${setting} to the path of its \`stats socket <path> level admin\` line`;
    case 'EACCES':
    case 'EPERM':
      return `let this user use the socket: in HAProxy's configuration \`stats socket ${lb.socket} mode 660 group <a group of this user> level admin\`, then reload HAProxy; or run updateserver as that user`;
    case 'ECONNREFUSED':
      return `HAProxy is not running (the socket file is left over): start it, or correct ${setting}`;
    case 'ENOTSOCK':
      return `${lb.socket} is not a socket: set ${setting} to HAProxy's \`stats socket\` path`;
    default:
      return err instanceof UpdateserverError ? err.hint : undefined;
  }
}

export async function probeLoadBalancers(stage: Stage, transports: ReadonlyMap<string, Transport>): Promise<Finding[]> {
  const findings: Finding[] = [];
  const local = new LocalTransport();
  for (const lb of Object.values(stage.loadBalancers)) {
    const subject = `load balancer ${lb.name}`;
    const where = lb.host === undefined ? 'this machine' : `host ${lb.host}`;
    const files = lb.host === undefined ? local : transports.get(lb.host);
    if (files === undefined) {
      findings.push(problem(subject, 'runtime API', `not probed: it is reached through host ${lb.host}, which could not be reached`, `fix host ${lb.host} first (above)`));
      continue;
    }
    const haproxy = Haproxy.forLoadBalancer(lb, lb.host === undefined ? localSocket(lb.socket) : () => files.openUnixSocket(lb.socket));
    try {
      const info = await haproxy.info();
      findings.push(ok(subject, 'runtime API', `HAProxy ${info.Version ?? '(version not shown)'} answers on ${lb.socket} (${where})`));
    } catch (err) {
      let code = errnoOf(err);
      let detail = detailOf(lb, err);
      if (lb.host !== undefined) {
        const state = (await files.exec(socketStateCommand(lb.socket))).stdout.trim();
        if (state in SOCKET_STATES) {
          code = state;
          detail = `${lb.socket} on host ${lb.host}: ${SOCKET_STATES[state]} (${detail})`;
        }
      }
      findings.push(problem(subject, 'runtime API', detail, socketFix(stage, lb, code, err)));
      continue;
    }
    try {
      const level = await haproxy.cliLevel();
      findings.push(level === 'admin'
        ? ok(subject, 'level', 'admin')
        : problem(subject, 'level', `the socket's level is ${level || 'unknown'}; switching traffic needs admin`, `end HAProxy's \`stats socket ${lb.socket} ...\` line with \`level admin\`, then reload HAProxy`));
    } catch (err) {
      findings.push(problem(subject, 'level', detailOf(lb, err), 'HAProxy 2.0 or later answers `show cli level`; upgrade HAProxy'));
    }
    try {
      const entries = await haproxy.showMap(lb.mapFile);
      findings.push(ok(subject, 'map', `HAProxy uses ${lb.mapFile} (${entries.length} entries)`));
    } catch (err) {
      findings.push(problem(subject, 'map', detailOf(lb, err), `HAProxy's configuration must use the map file the profile names: install the output of \`updateserver lb render ${stage.name}\` and reload HAProxy, or correct loadBalancers.${lb.name}.mapFile`));
    }
    const access = await files.exec(`test -r ${quote(lb.mapFile)} && test -w ${quote(dirname(lb.mapFile))}`);
    findings.push(access.code === 0
      ? ok(subject, 'map file', `${lb.mapFile} readable, ${dirname(lb.mapFile)} writable (${where})`)
      : problem(subject, 'map file', `${lb.mapFile} is not readable, or ${dirname(lb.mapFile)} is not writable, on ${where}: the switch rewrites it so that a reload keeps the live slot`, `on ${where}: let ${lb.host === undefined ? 'this user' : stage.hosts[lb.host]!.user} read the file and write its directory`));
  }
  return findings;
}
