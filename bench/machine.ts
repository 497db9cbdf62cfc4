/*
 * The machine the figures come from, read when the benchmarks run: CPU, cores, memory, OS, kernel and
 * the versions of what the figures depend on. A tool that cannot be asked says so instead of failing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  os: string;
  kernel: string;
  node: string;
  haproxy: string;
  postgres: string;
  rsync: string;
  openssh: string;
}

function ask(argv: string[], pick: (out: string) => string): string {
  try {
    const out = execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    return pick(out).trim() || 'unknown';
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    if (e.stderr && pick(e.stderr).trim()) return pick(e.stderr).trim();
    return `unknown (${argv[0]}: ${e.message.split('\n')[0]})`;
  }
}

const firstLine = (s: string) => s.split('\n')[0] ?? '';

export function readMachine(): Machine {
  const cpuinfo = (() => { try { return readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; } })();
  const osRelease = (() => { try { return readFileSync('/etc/os-release', 'utf8'); } catch { return ''; } })();
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    os: /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1] ?? 'unknown',
    kernel: release(),
    node: process.version,
    haproxy: ask(['haproxy', '-v'], (o) => firstLine(o).replace(/ - https?:\S+/, '')),
    postgres: ask(['psql', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-Atc', 'SHOW server_version'], (o) => `server ${firstLine(o)}`)
      + `; ${ask(['pg_dump', '--version'], firstLine)}`,
    rsync: ask(['rsync', '--version'], firstLine),
    // `ssh -V` prints its version on stderr.
    openssh: firstLine(spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr ?? '').trim() || 'unknown',
  };
}
