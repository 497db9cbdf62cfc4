/*
 * npm run demo: the main job on a local lab. Starts three "servers" (sshd on 127.0.0.11-13, each with
 * its own /srv) and one HAProxy per stage, promotes the sample app into dev and then into beta while
 * a load generator sends requests through beta's HAProxy, prints what happened, and tears it all down.
 * Uses the repository's own profiles/dev.yaml and profiles/beta.yaml.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadProfile } from '../src/config/load.js';
import { renderHaproxyConfig } from '../src/lb/config.js';
import { startLab, type Lab } from '../test/lab/lab.js';
import { startLoad } from '../test/lab/load.js';
import { FIXTURE_APP, REPO } from '../test/lab/pipeline.js';
import { CLI } from '../test/integration/cli.js';

const LAB = join(REPO, '.lab');
const STATE = join(LAB, 'state');
const bold = process.stdout.isTTY && !process.env.NO_COLOR;
const say = (s: string) => process.stdout.write(bold ? `\n\x1b[1m==> ${s}\x1b[0m\n` : `\n==> ${s}\n`);

function updateserver(...args: string[]): Promise<number> {
  process.stdout.write(`$ updateserver ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', REPO, '--state-dir', STATE], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

async function must(...args: string[]): Promise<void> {
  const code = await updateserver(...args);
  if (code !== 0) throw new Error(`updateserver ${args.join(' ')} exited ${code}`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run demo needs root: it starts sshd servers in their own mount namespaces (see docs/lab.md).\n');
    return 1;
  }
  if (existsSync(LAB)) await rm(LAB, { recursive: true, force: true });
  say('Starting the lab: dev1 (127.0.0.11), beta1 (127.0.0.12), beta2 (127.0.0.13), each an sshd with its own /srv');
  const lab: Lab = await startLab({
    dir: LAB,
    hosts: [{ name: 'dev1', address: '127.0.0.11' }, { name: 'beta1', address: '127.0.0.12' }, { name: 'beta2', address: '127.0.0.13' }],
  });
  try {
    const project = { dir: REPO, stateDir: STATE };
    for (const name of ['dev', 'beta']) {
      const stage = await loadProfile(project, name);
      const lb = stage.loadBalancers.lb!;
      await lab.startHaproxy(name, () => renderHaproxyConfig(stage, lb));
      process.stdout.write(`HAProxy for ${name}: http://${lb.address}:8080/ (config rendered from profiles/${name}.yaml)\n`);
    }
    await cp(FIXTURE_APP, join(LAB, 'app'), { recursive: true });

    say('Release 1.0.0 of the sample app into dev, then into beta (nothing served yet)');
    await must('dev');
    await must('beta');

    say('A new version in dev: 1.1.0');
    await writeFile(join(LAB, 'app', 'VERSION'), '1.1.0\n');
    await must('dev');

    say('What a beta promotion would do (dry run: nothing changes)');
    await must('beta', '--dry-run');

    say('updateserver beta, while clients send requests through beta\'s HAProxy');
    const load = startLoad('http://127.0.0.22:8080/', { connections: 8 });
    await new Promise((r) => setTimeout(r, 500));
    const code = await updateserver('beta');
    await new Promise((r) => setTimeout(r, 500));
    const result = await load.stop();
    const failed = result.non2xx + result.errors + result.timeouts;
    process.stdout.write(`\nload through HAProxy during the promotion: ${result.requests} requests, ${failed} failed\n`);
    for (const [release, n] of Object.entries(result.byRelease)) process.stdout.write(`  answered by ${release}: ${n}\n`);

    say('updateserver status beta');
    await must('status', 'beta');
    if (code !== 0 || failed > 0) {
      process.stdout.write('\nThe demo did not go as it should: see the messages above.\n');
      return 1;
    }
    process.stdout.write('\nDone: beta serves 1.1.0 from the other slot; the previous slot is stopped and kept for rollback.\n');
    return 0;
  } finally {
    say('Tearing down the lab');
    await lab.stop();
  }
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  return 1;
});
