/* Runs the real updateserver command line, as a user would, and captures what it says. */
import { spawn } from 'node:child_process';
import { CLI, spawnCli, type CliResult } from '../lab/spawn-cli.js';

export { CLI, type CliResult } from '../lab/spawn-cli.js';

export function updateserver(project: string, ...args: string[]): Promise<CliResult> {
  return spawnCli(project, args);
}

/**
 * `updateserver <args>` that SIGKILLs itself at one step boundary (UPDATESERVER_KILL_AT, see
 * src/apply/apply.ts); resolves with the signal that ended it and its pid.
 */
export function updateserverKilledAt(project: string, killAt: string, ...args: string[]): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string; pid: number | undefined }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', project], {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1', UPDATESERVER_KILL_AT: killAt },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, pid: child.pid }));
  });
}

/** A CLI result as an assertion message: the exit status and everything it said. */
export const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** The slot updateserver recorded as live for the stage's first service (status --json). */
export async function recordedLiveSlot(project: string, stage: string): Promise<'a' | 'b'> {
  const r = await updateserver(project, 'status', stage, '--json');
  return (JSON.parse(r.stdout) as { services: Array<{ recorded: 'a' | 'b' }> }).services[0]!.recorded;
}

export const otherSlot = (s: 'a' | 'b'): 'a' | 'b' => (s === 'a' ? 'b' : 'a');
