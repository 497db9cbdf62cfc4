/*
 * One run of the real `updateserver` command line, measured from outside: wall time from spawning it
 * to its exit, and its peak memory (VmHWM, the kernel's high-water mark of its resident set, read from
 * /proc every 10 ms while it runs; the last read is at most 10 ms before the exit).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI } from '../test/integration/cli.js';

export interface CliRun { code: number | null; wallMs: number; peakKb: number; stdout: string; stderr: string; startedAt: number; endedAt: number }

export function vmHwmKb(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // exited
  }
}

export function measuredCli(project: string, args: readonly string[]): Promise<CliRun> {
  const startedAt = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', project], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    let peakKb = 0;
    const poll = setInterval(() => { peakKb = Math.max(peakKb, vmHwmKb(child.pid!) ?? 0); }, 10);
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (e) => { clearInterval(poll); reject(e); });
    child.on('close', (code) => {
      clearInterval(poll);
      const endedAt = Date.now();
      resolve({ code, wallMs: endedAt - startedAt, peakKb, stdout, stderr, startedAt, endedAt });
    });
  });
}

export const mb = (kb: number) => Math.round(kb / 102.4) / 10;
