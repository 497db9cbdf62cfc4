/*
 * Probing the hosts of a stage, read-only: the SSH connection under the strict known_hosts policy,
 * rsync on the host, and under each service's root (or the nearest directory that exists, where the
 * root will be made) write access and free disk space. Nothing is created or changed on the host.
 */
import type { Host, Stage } from '../config/model.js';
import { quote } from '../commands/shell.js';
import { describeError, HostError, HostKeyError, UpdateserverError } from '../errors.js';
import { bytesNeeded } from '../promote/preflight.js';
import { formatBytes } from '../bytes.js';
import { eachLimited } from '../transport/runner.js';
import { SshTransport } from '../transport/ssh.js';
import type { Transport } from '../transport/transport.js';
import { ok, problem, type Finding } from './finding.js';

/**
 * Prints the nearest existing directory of $1, then "writable" or "read-only", then df's free
 * kilobytes there. Read-only: test -w asks access(2), which also answers for a read-only mount.
 */
export function rootProbeCommand(root: string): string {
  return `d=${quote(root)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; echo "$d"; ` +
    `if [ -w "$d" ]; then echo writable; else echo read-only; fi; df -Pk "$d" | awk 'NR==2 { print $4 }'`;
}

export function parseRootProbe(stdout: string): { dir: string; writable: boolean; freeBytes: number } | undefined {
  const [dir, access, free] = stdout.trim().split('\n');
  if (!dir || !access || free === undefined || !/^\d+$/.test(free.trim())) return undefined;
  return { dir, writable: access === 'writable', freeBytes: Number(free.trim()) * 1024 };
}

/** The programs `files:` data needs on a host (copy, SHA-256 verification, the rollback report's lists). */
export const FILES_TOOLS = ['find', 'sort', 'diff', 'sha256sum', 'xargs', 'awk', 'cut', 'rsync'] as const;
/** Prints the missing ones, one per line (nothing when all are there). */
export const filesToolsProbe = () => `for t in ${FILES_TOOLS.join(' ')}; do command -v "$t" >/dev/null 2>&1 || printf '%s\\n' "$t"; done; true`;

function connectFix(host: Host, err: unknown): string {
  if (err instanceof UpdateserverError && err.hint) return err.hint;
  const message = describeError(err);
  if (message.includes('authentication')) {
    return `add the public key of ${host.key ?? 'your ssh-agent'} to ~${host.user}/.ssh/authorized_keys on ${host.address}, e.g. ssh-copy-id ${host.key ? `-i ${host.key}.pub ` : ''}-p ${host.port} ${host.user}@${host.address}`;
  }
  return `check that sshd listens on ${host.address}:${host.port} and that this machine reaches it (address and port in the profile)`;
}

/**
 * Every host of the stage, at most `parallel` at once. The open connections are returned for the
 * load balancers that are reached through a host; the caller closes them.
 */
export async function probeHosts(stage: Stage, releaseBytes: number): Promise<{ findings: Finding[]; transports: Map<string, Transport> }> {
  const transports = new Map<string, Transport>();
  const hosts = Object.values(stage.hosts);
  const perHost = await eachLimited(hosts, stage.parallel, async (host): Promise<Finding[]> => {
    const subject = `host ${host.name}`;
    let transport: Transport;
    try {
      transport = await SshTransport.connect(host);
    } catch (err) {
      const detail = err instanceof HostError ? describeError(err).replace(`${host.name}: `, '') : describeError(err);
      return [problem(subject, err instanceof HostKeyError ? 'host key' : 'ssh', detail, connectFix(host, err))];
    }
    transports.set(host.name, transport);
    const findings = [ok(subject, 'ssh', `${host.user}@${host.address}:${host.port}, host key listed in ${host.knownHosts}`)];
    const rsync = await transport.exec('command -v rsync');
    findings.push(rsync.code === 0
      ? ok(subject, 'rsync', rsync.stdout.trim())
      : problem(subject, 'rsync', `rsync is not installed on ${host.address} (or not on the PATH of ${host.user}'s SSH sessions)`, `install it on the host: apt-get install rsync (Debian/Ubuntu), dnf install rsync (RHEL/Fedora)`));
    const withFiles = Object.values(stage.services).filter((s) => s.files && s.hosts.includes(host.name)).map((s) => s.name);
    if (withFiles.length > 0) {
      const res = await transport.exec(filesToolsProbe());
      const missing = res.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
      findings.push(res.code === 0 && missing.length === 0
        ? ok(subject, 'files tools', `${FILES_TOOLS.join(', ')} (files data of ${withFiles.join(', ')})`)
        : problem(subject, 'files tools', `${missing.join(', ') || `exit ${res.code}`} not found on ${host.address}: the files data of ${withFiles.join(', ')} is copied, verified and reported with ${missing.length > 1 ? 'them' : 'it'}`,
          'install them on the host: apt-get install findutils diffutils coreutils gawk rsync (Debian/Ubuntu)'));
    }
    for (const service of Object.values(stage.services).filter((s) => s.hosts.includes(host.name))) {
      const res = await transport.exec(rootProbeCommand(service.root));
      const probe = res.code === 0 ? parseRootProbe(res.stdout) : undefined;
      if (!probe) {
        findings.push(problem(subject, `${service.name} root`, `cannot inspect ${service.root}: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`, undefined));
        continue;
      }
      const made = probe.dir === service.root ? service.root : `${probe.dir} (${service.root} will be made there)`;
      findings.push(probe.writable
        ? ok(subject, `${service.name} write access`, `${made} is writable by ${host.user}`)
        : problem(subject, `${service.name} write access`, `${made} is not writable by ${host.user}`, `on ${host.address}: mkdir -p ${service.root} && chown ${host.user} ${service.root}, or log in as a user that may write there (ssh.user)`));
      const needed = bytesNeeded(releaseBytes);
      findings.push(probe.freeBytes >= needed
        ? ok(subject, `${service.name} disk`, `${formatBytes(probe.freeBytes)} free under ${probe.dir}; a release needs about ${formatBytes(needed)}`)
        : problem(subject, `${service.name} disk`, `${formatBytes(probe.freeBytes)} free under ${probe.dir}; a release needs about ${formatBytes(needed)}`, `free space on ${host.address} under ${probe.dir}, or remove old releases: updateserver purge ${stage.name}`));
    }
    return findings;
  });
  const findings = perHost.flatMap((r, i) => (r.status === 'fulfilled' ? r.value : [problem(`host ${hosts[i]!.name}`, 'probe', describeError(r.reason), undefined)]));
  return { findings, transports };
}
