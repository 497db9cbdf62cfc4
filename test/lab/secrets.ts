/*
 * Where a secret must never show: the command lines of every process on this machine (which includes
 * the lab hosts' sessions: rsync, ssh, pg_dump, mysql, the apps), sampled every ~20 ms while a run goes
 * on, and every file under the directories a run writes to. The same sampler notes which processes
 * did get a secret, in their environment, so a test can show the secret really was handed on.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ArgvWatch {
  /** Stops sampling; what was seen. */
  stop(): ArgvReport;
}

export interface ArgvReport {
  samples: number;
  /** Distinct command lines seen (pid + argv), for positive controls ("pg_dump was seen"). */
  commandLines: string[];
  /** Command lines that contained a secret: must be empty. */
  leaks: string[];
  /** Command lines of processes whose environment held a secret (e.g. PGPASSWORD for pg_dump). */
  secretInEnvironment: string[];
}

function readProc(pid: string, what: 'cmdline' | 'environ'): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${what}`, 'latin1');
  } catch {
    return undefined; // gone, or a kernel thread
  }
}

/** Samples /proc/<pid>/cmdline of every process (what `ps -eo pid,args` shows) every intervalMs. */
export function watchArgv(secrets: readonly string[], intervalMs = 20): ArgvWatch {
  const seen = new Map<string, string>();
  const leaks = new Set<string>();
  const inEnv = new Set<string>();
  const envChecked = new Set<string>();
  let samples = 0;
  const sample = () => {
    samples++;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      const raw = readProc(pid, 'cmdline');
      if (!raw) continue;
      const args = raw.replace(/\0+$/, '').split('\0').join(' ');
      const key = `${pid} ${args}`;
      if (!seen.has(key)) seen.set(key, args);
      if (secrets.some((s) => raw.includes(s))) leaks.add(key);
      if (!envChecked.has(key)) {
        envChecked.add(key);
        const env = readProc(pid, 'environ');
        if (env && secrets.some((s) => env.includes(s))) inEnv.add(key);
      }
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { samples, commandLines: [...seen.keys()], leaks: [...leaks], secretInEnvironment: [...inEnv] };
    },
  };
}

/** Every regular file under dirs (recursively) whose bytes contain one of the secrets, and how many files were read. */
export async function filesContaining(dirs: readonly string[], secrets: readonly string[]): Promise<{ files: number; leaks: string[] }> {
  let files = 0;
  const leaks: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) {
        files++;
        const text = (await readFile(path)).toString('latin1');
        for (const s of secrets) if (text.includes(s)) leaks.push(`${path}: contains ${s.slice(0, 6)}...`);
      }
    }
  };
  for (const dir of dirs) await walk(dir);
  return { files, leaks };
}
