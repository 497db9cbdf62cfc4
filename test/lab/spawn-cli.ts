/* Runs the real updateserver command line, as a user would, and captures what it says. No lab needed. */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Compiled to dist/test/lab/, so the repository is three levels up. */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * The bundle that the `updateserver` command starts (package.json bin), as users run it.
 * UPDATESERVER_CLI=dist/src/cli/main.js runs tsc's unbundled output instead (to compare start-up times).
 */
export const CLI = process.env.UPDATESERVER_CLI ? join(REPO, process.env.UPDATESERVER_CLI) : join(REPO, 'dist', 'bin', 'updateserver.js');

export interface CliResult { code: number | null; stdout: string; stderr: string; ms: number; pid?: number | undefined }

/** `updateserver <args> -C <project>`; killed after timeoutMs when given (a command that hangs fails its test). */
export function spawnCli(project: string, args: string[], options: { timeoutMs?: number } = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', project], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => { if (timer) clearTimeout(timer); resolve({ code, stdout, stderr, ms: Date.now() - started, pid: child.pid }); });
  });
}
