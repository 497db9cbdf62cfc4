/*
 * npm run demo: the whole story of the repository's own project (profiles/, healthchecks/, migrations/,
 * lb-templates/) on a local lab. Every host the profiles name is an sshd on its 127.0.0.x address with
 * its own /srv, every stage has its HAProxy, the slot databases are on the local PostgreSQL. A release
 * goes into dev, through beta and test into prod (after a dry run), a broken release is rolled back by
 * its post-switch checks, prod is flipped back by hand, and each step runs under load and says which
 * release serves, how many requests were sent and how many failed. Then it all comes down again.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startLoad } from '../test/lab/load.js';
import { FIXTURE_APP, REPO } from '../test/lab/pipeline.js';
import { labDirOf, sampleApp, startProjectLab, type ProjectLab } from '../test/lab/project-lab.js';
import { CLI } from '../test/integration/cli.js';

const PROJECT = { dir: REPO, stateDir: join(labDirOf({ dir: REPO, stateDir: '' }), 'state') };
const APP = join(labDirOf(PROJECT), 'app');
const bold = process.stdout.isTTY && !process.env.NO_COLOR;
const say = (s: string) => process.stdout.write(bold ? `\n\x1b[1m==> ${s}\x1b[0m\n` : `\n==> ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function updateserver(...args: string[]): Promise<number> {
  process.stdout.write(`$ updateserver ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', REPO, '--state-dir', PROJECT.stateDir], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

/** What a stage's service answers now: the app's version and release, or why it answers nothing. */
async function serving(url: string): Promise<string> {
  try {
    const app = await sampleApp(url);
    return `${app.version} (release ${app.release}, slot ${app.slot})`;
  } catch (err) {
    return `nothing (${err instanceof Error ? err.message : String(err)})`;
  }
}

interface Step { label: string; stage: string; serves: string; requests: number; failed: number; ok: boolean }

/** Runs `updateserver <args>` while clients send requests through the stage's HAProxy; says what happened. */
/** `expect`: the version the stage must serve afterwards, the run's exit status and recorded result. */
async function underLoad(lab: ProjectLab, label: string, title: string, stage: string, args: string[], expect: { version: string; exit?: number; result?: string }): Promise<Step> {
  say(`${label}: ${title}`);
  const url = lab.url(stage);
  process.stdout.write(`(serving before: ${await serving(url)}; clients send requests to ${url} throughout)\n`);
  const load = startLoad(url, { connections: 8 });
  await sleep(300);
  const code = await updateserver(...args);
  await sleep(300);
  const result = await load.stop();
  const failed = result.non2xx + result.errors + result.timeouts;
  const serves = await serving(url);
  const answered = Object.entries(result.byRelease).map(([release, n]) => `${n} by ${release}`).join(', ');
  const expectExit = expect.exit ?? 0;
  const recorded = await lastResult(stage);
  const expectResult = expect.result ?? 'ok';
  const exitOk = code === expectExit && recorded === expectResult && serves.startsWith(`${expect.version} `);
  process.stdout.write(`\nThe run's result, as ${stage}'s history records it: ${recorded}. ${stage} serves ${serves}.\n`);
  process.stdout.write(`Requests through ${stage}'s HAProxy during the run: ${result.requests}, failed: ${failed}${answered ? ` (answered: ${answered})` : ''}.\n`);
  if (!exitOk) process.stdout.write(`Expected: updateserver exits ${expectExit} (it exited ${code}), the run is recorded as ${expectResult} and ${stage} serves ${expect.version}.\n`);
  return { label, stage, serves, requests: result.requests, failed, ok: exitOk && failed === 0 && result.requests > 0 };
}

/** The result the stage's history records for its last run: ok, failed or rolled back. */
function lastResult(stage: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'history', stage, '--json', '--limit', '1', '-C', REPO, '--state-dir', PROJECT.stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve((JSON.parse(out) as Array<{ result: string }>)[0]?.result ?? 'nothing recorded');
      } catch {
        resolve(`unreadable history: ${out.slice(0, 200)}`);
      }
    });
  });
}

async function must(...args: string[]): Promise<void> {
  const code = await updateserver(...args);
  if (code !== 0) throw new Error(`updateserver ${args.join(' ')} exited ${code}`);
}

/** Version `version` of the sample app in the first stage's source directory. */
async function setVersion(version: string): Promise<void> {
  await writeFile(join(APP, 'VERSION'), `${version}\n`);
}

async function story(lab: ProjectLab): Promise<Step[]> {
  const steps: Step[] = [];
  say('Release 1.0.0 of the sample app into dev, beta, test and prod (nothing is served yet, so no load)');
  for (const stage of ['dev', 'beta', 'test', 'prod']) await must(stage, '--quiet');
  for (const stage of ['dev', 'beta', 'test', 'prod']) process.stdout.write(`${stage} serves ${await serving(lab.url(stage))}\n`);

  await setVersion('1.1.0');
  steps.push(await underLoad(lab, 'updateserver dev', 'a new version, 1.1.0, released into dev', 'dev', ['dev', '--quiet'], { version: '1.1.0' }));
  steps.push(await underLoad(lab, 'updateserver beta', 'promote what dev runs into beta (its code, and a copy of dev\'s live database)', 'beta', ['beta', '--quiet'], { version: '1.1.0' }));
  steps.push(await underLoad(lab, 'updateserver test', 'promote what beta runs into test', 'test', ['test', '--quiet'], { version: '1.1.0' }));

  say('updateserver prod --dry-run: what a prod promotion would do, every step and command; nothing changes');
  await must('prod', '--dry-run');

  steps.push(await underLoad(lab, 'updateserver prod', '1.1.0 into prod (this time with every step it takes; the others run with --quiet)', 'prod', ['prod'], { version: '1.1.0' }));

  // A bug only the post-switch checks cover: POST /echo moved away (healthchecks/web.yaml, post: echo).
  const server = join(APP, 'server.mjs');
  const code = await readFile(server, 'utf8');
  const broken = code.replace("url.pathname === '/echo'", "url.pathname === '/echo/v2'");
  if (broken === code) throw new Error(`${server}: the /echo route to break for the demo is not there any more`);
  await writeFile(server, broken);
  await setVersion('1.2.0');
  steps.push(await underLoad(lab, 'updateserver dev (1.2.0, broken)', 'release 1.2.0, whose POST /echo is broken: its post-switch check fails and traffic goes back by itself', 'dev', ['dev', '--quiet'], { version: '1.1.0', exit: 1, result: 'rolled back' }));

  steps.push(await underLoad(lab, 'updateserver flip prod', 'send prod\'s traffic back to the other slot (1.0.0), by hand', 'prod', ['flip', 'prod', '--quiet'], { version: '1.0.0' }));

  say('updateserver status prod: which slot is live, which release each slot holds on each host');
  await must('status', 'prod');
  return steps;
}

function summary(steps: Step[], seconds: number): boolean {
  say('Summary: every run above, under load');
  const width = Math.max(...steps.map((s) => s.label.length));
  for (const s of steps) {
    process.stdout.write(`${s.ok ? 'ok  ' : 'FAIL'}  ${s.label.padEnd(width)}  ${String(s.requests).padStart(6)} requests, ${s.failed} failed; then ${s.stage} serves ${s.serves.split(' (')[0]}\n`);
  }
  const total = steps.reduce((n, s) => n + s.requests, 0);
  const failed = steps.reduce((n, s) => n + s.failed, 0);
  const ok = steps.every((s) => s.ok);
  process.stdout.write(ok
    ? `\nDone in ${seconds} s: ${total} requests during ${steps.length} runs, ${failed} failed. prod serves 1.0.0 again; 1.1.0 is one flip away.\n`
    : `\nThe demo did not go as it should (${failed} of ${total} requests failed): see the messages above.\n`);
  return ok;
}

async function main(): Promise<number> {
  const started = Date.now();
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run demo needs root: it starts sshd servers in their own mount namespaces. Run: sudo npm run demo\n');
    return 1;
  }
  const labDir = labDirOf(PROJECT);
  if (existsSync(labDir)) await rm(labDir, { recursive: true, force: true });
  say('Starting the lab from profiles/*.yaml: each host an sshd on its own address, with its own /srv; one HAProxy per stage');
  const lab = await startProjectLab(PROJECT, 'prod');
  try {
    for (const [name, stage] of Object.entries(lab.stages)) {
      process.stdout.write(`${name.padEnd(5)} hosts ${Object.values(stage.hosts).map((h) => `${h.name} (${h.address})`).join(', ')}; HAProxy ${lab.url(name)}\n`);
    }
    await cp(FIXTURE_APP, APP, { recursive: true });
    const steps = await story(lab);
    return summary(steps, Math.round((Date.now() - started) / 1000)) ? 0 : 1;
  } finally {
    say('Tearing down the lab');
    await lab.stop();
  }
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
});
