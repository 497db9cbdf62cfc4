#!/usr/bin/env node
/*
 * updateserver's command line. Only this file and cli/output.ts print results or choose the exit
 * status: 0 success, 1 failed (live traffic untouched unless the message says otherwise), 2 bad input.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../package-dir.js';
import { Command, CommanderError } from 'commander';
import { addCommonOptions, type PromoteFlags } from './options.js';
import { routeStageHelp } from './stage-help.js';
import { EXIT_BAD_INPUT, EXIT_OK } from '../errors.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string };

const collect = (value: string, previous: string[] = []) => [...previous, ...value.split(',').filter(Boolean)];

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('updateserver')
    .description('Blue/green releases over SSH behind HAProxy: promote what the previous stage runs into the idle slot, check it, switch traffic, keep the old slot for rollback.')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // Names what is being done for the one line that would report an unforeseen error.
    .hook('preAction', async (_program, action) => {
      const words = [action.parent && action.parent !== _program ? action.parent.name() : undefined, action.name(), ...action.args].filter((w): w is string => w !== undefined);
      (await import('./output.js')).setActivity(`running \`updateserver ${words.join(' ')}\``, action.opts().verbose === true);
    });

  addCommonOptions(program.command('promote <stage>', { isDefault: true })
    .summary('promote the previous stage\'s live release into <stage> (the default command: `updateserver beta`)')
    .description('Copy the previous stage\'s live release (or, for the first stage, its source) into the idle slot of every host of <stage>, start it, health-check it, switch every load balancer to it, drain and stop the old slot.')
    .option('-n, --dry-run', 'print the plan, with what runs if a step fails (every step of it with --verbose), and change nothing')
    .option('-s, --service <name>', 'promote only this service (repeat or comma-separate for several)', collect)
    .option('-f, --force', 'promote even when the stage already runs that release')
    .option('--code-only', 'a minor revision: copy and start the code only; no snapshot, copy or migration (each idle slot keeps the database it has)')
    .option('--steps <percentages>', 'progressive rollout: e.g. 5,25,50 sends that share of requests to the new slot step by step, each judged by HAProxy\'s counters, then switches (docs/profiles.md, rollout)')
    .option('-w, --wait <seconds>', 'wait this long for a running command\'s lock instead of giving up')
    .option('--abandon', 'an earlier run died: clean up after it (live is not touched) and stop')
    .option('--resume', 'an earlier run died: clean up after it, then promote'))
    .addHelpText('after', '\nExamples:\n  updateserver beta              promote dev\'s live release into beta\n  updateserver prod --dry-run    show every step of a prod promotion; change nothing\n  updateserver beta --service web --json\n  updateserver prod --code-only  a minor revision: new code, each idle slot keeps its database')
    .action(async (stage: string, flags: PromoteFlags) => setExit(await (await import('./promote.js')).runPromote(stage, flags)));

  addCommonOptions(program.command('status <stage>')
    .description('show the live slot of every service, per load balancer and per host, and the last run'))
    .action(async (stage: string, flags: { json?: boolean; project?: string; stateDir?: string }) => setExit(await (await import('./status.js')).runStatus(stage, flags)));
  addCommonOptions(program.command('flip <stage>')
    .description('send <stage>\'s traffic to the other slot, which keeps its release: start it where it is not running, health-check it on every host, switch every load balancer, drain and stop the old slot')
    .option('-n, --dry-run', 'print the plan, with what runs if a step fails (every step of it with --verbose), and change nothing')
    .option('-s, --service <name>', 'flip only this service (repeat or comma-separate for several)', collect)
    .option('-f, --force', 'flip even to a release marked bad (one that failed its checks)')
    .option('-w, --wait <seconds>', 'wait this long for a running command\'s lock')
    .option('--abandon', 'an earlier run died: clean up after it and stop')
    .option('--resume', 'an earlier run died: clean up after it, then flip'))
    .action(async (stage: string, flags: PromoteFlags) => setExit(await (await import('./promote.js')).runPromote(stage, flags, 'flip')));

  addCommonOptions(program.command('maintenance <stage> <mode>')
    .description('maintenance page for every request (on), writes refused with 503 while reads are served (read-only), or normal service (off); switched at every load balancer without a reload, under the stage\'s lock')
    .option('-n, --dry-run', 'print the plan (the map entries each load balancer gets, and what is put back if one fails) and change nothing')
    .option('-f, --force', 'an emergency: change the entries even while another command holds the stage\'s lock (a hung run, a lock taken by hand); this can end a promotion\'s write freeze')
    .option('-s, --service <name>', 'only this service (repeat or comma-separate for several)', collect)
    .option('-w, --wait <seconds>', 'wait this long for a running command\'s lock instead of giving up'))
    .addHelpText('after', '\nModes: on | read-only | off')
    .action(async (stage: string, mode: string, flags: PromoteFlags) => setExit(await (await import('./maintenance.js')).runMaintenance(stage, mode, flags)));

  addCommonOptions(program.command('purge <stage>')
    .description('remove old releases from every host of <stage> under the stage\'s lock, keeping the newest complete ones (keepReleases in the profile, default 5) and always the releases of both slots; an incomplete release is never removed')
    .option('-k, --keep <n>', 'releases to keep per service and host')
    .option('-n, --dry-run', 'list what would be removed; remove nothing')
    .option('-s, --service <name>', 'only this service (repeat or comma-separate for several)', collect)
    .option('-w, --wait <seconds>', 'wait this long for a running command\'s lock instead of giving up'))
    .action(async (stage: string, flags: PromoteFlags & { keep?: string }) => setExit(await (await import('./purge.js')).runPurge(stage, flags)));

  addCommonOptions(program.command('rollback <stage>')
    .description('send <stage>\'s traffic back to the slot that was live before the last promotion (started if stopped, health-checked first); the release left is marked bad and is not promoted onward')
    .option('-n, --dry-run', 'print the plan, with what runs if a step fails (every step of it with --verbose), and change nothing')
    .option('-s, --service <name>', 'only this service (repeat or comma-separate for several)', collect)
    .option('-w, --wait <seconds>', 'wait this long for a running command\'s lock'))
    .action(async (stage: string, flags: PromoteFlags) => setExit(await (await import('./promote.js')).runPromote(stage, flags, 'rollback')));

  addCommonOptions(program.command('replay <stage>')
    .description('apply to the database that serves now what a rollback or flip left behind in the other slot\'s database (its report: --run), in one transaction; refused as a whole, naming the table and row, on a missing table or column or a conflicting row')
    .requiredOption('--run <id>', 'the run whose report to replay (the rollback\'s output names it)')
    .option('-n, --dry-run', 'show the SQL (run in a transaction that is rolled back) and change nothing')
    .option('--skip <table>', 'leave this table out (repeat or comma-separate for several)', collect)
    .option('-s, --service <name>', 'only this service (repeat or comma-separate for several)', collect)
    .option('-w, --wait <seconds>', 'wait this long for the stage\'s lock'))
    .action(async (stage: string, flags: PromoteFlags & { run: string; skip?: string[] }) => setExit(await (await import('./replay.js')).runReplay(stage, flags)));

  // Answers to a rollout step's pause (pause: true), from any machine sharing the stage's state (issue 20).
  addCommonOptions(program.command('continue <stage>')
    .description('a rollout is paused at a step (pause: true): let it go on to the next step'))
    .action(async (stage: string, flags: PromoteFlags) => setExit(await (await import('./rollout-control.js')).runPauseAnswer('continue', stage, flags)));
  addCommonOptions(program.command('abort <stage>')
    .description('a rollout is paused at a step (pause: true): abort it like a failed gate (all traffic back on the old slot, the new release marked bad)'))
    .action(async (stage: string, flags: PromoteFlags) => setExit(await (await import('./rollout-control.js')).runPauseAnswer('abort', stage, flags)));

  addCommonOptions(program.command('history <stage>')
    .description('the runs recorded for <stage>: when, who, what moved where, result')
    .option('-l, --limit <n>', 'how many of the latest runs', '20'))
    .action(async (stage: string, flags: PromoteFlags & { limit?: string }) => setExit(await (await import('./history.js')).runHistory(stage, flags)));

  addCommonOptions(program.command('serve')
    .description('the web console: the pipeline at a glance, each stage\'s history, and promote, dry run, flip and rollback for people without a shell account; the same code and state as the command line')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8700')
    .option('--users <file>', 'users, their scrypt password hashes and their right per stage (view or release); required')
    .option('--hash-password', 'read a password on stdin and print its hash for the users file'))
    .addHelpText('after', '\nUsers file:\n  users:\n    alice: { password: "scrypt$...", stages: { dev: release, beta: release, prod: view } }\n    bob:   { password: "scrypt$...", stages: { "*": view } }\n\nA password hash: printf %s "$PASSWORD" | updateserver serve --hash-password\n/metrics (OpenMetrics) answers a signed-in user, or a scraper sending UPDATESERVER_METRICS_TOKEN as a bearer token.')
    .action(async (flags: PromoteFlags & { listen?: string; users?: string; hashPassword?: boolean }) => setExit(await (await import('./serve.js')).runServe(flags)));

  addCommonOptions(program.command('lock <action> <stage>')
    .description('status: who holds the lock of <stage>; acquire: take it by hand (a maintenance window) until released; release: free it')
    .option('-m, --message <text>', 'why (acquire)')
    .option('--ttl <seconds>', 'acquire: let the lock expire after this long')
    .option('-f, --force', 'release: even a lock held by a running command'))
    .addHelpText('after', '\nActions: status | acquire | release')
    .action(async (action: string, stage: string, flags: PromoteFlags & { message?: string; ttl?: string; force?: boolean }) => setExit(await (await import('./lock.js')).runLock(action, stage, flags)));

  addCommonOptions(program.command('migrate <action> <stage> [service] [version]')
    .description('status: schema version, last version-table row and pending migrations of every slot database of <stage>; resolve <service> <version>: after repairing a failed migration by hand, mark it ok')
    .option('--slot <a|b>', 'resolve: the slot whose database was repaired', 'a')
    .option('-m, --comment <text>', 'resolve: what was done by hand'))
    .addHelpText('after', '\nExamples:\n  updateserver migrate status prod\n  updateserver migrate resolve prod web 12 --slot b -m "added the missing index by hand"')
    .action(async (action: string, stage: string, service: string | undefined, version: string | undefined, flags: PromoteFlags & { comment?: string }) => setExit(await (await import('./migrate.js')).runMigrate(action, stage, service, version, flags)));

  addCommonOptions(program.command('check <stage>')
    .summary('try everything a promotion into <stage> needs, changing nothing; print each problem with its fix')
    .description('validate the profiles and templates of <stage> offline, then try every host (SSH with the strict host key policy, rsync, write access and disk under each service root), load balancer (runtime socket, level admin, map file) and database (connect, version), changing nothing; each failure is printed with its fix')
    .option('--offline', 'only the checks that need no network: profiles, health checks, templates, source, migrations'))
    .addHelpText('after', '\nExit status: 0 every check passed; 1 some failed (each with "fix:"); 2 bad input: a profile, health-check file, migration file or the HAProxy template is wrong (also with --offline), or wrong usage.\n\nExamples:\n  updateserver check beta\n  updateserver check prod --json | jq \'.findings[] | select(.ok | not)\'')
    .action(async (stage: string, flags: { json?: boolean; offline?: boolean; project?: string; stateDir?: string }) => setExit(await (await import('./check.js')).runCheck(stage, flags)));

  program.command('init [dir]')
    .summary('write a commented starter project (profiles, health checks, HAProxy template, migrations, systemd unit)')
    .description('write a starter project into [dir] (default: the current directory): profiles/ for two stages, healthchecks/, lb-templates/, migrations/ with an example, a systemd template unit for slots, and the JSON Schemas the YAML files name for editors')
    .option('-f, --force', 'overwrite files that exist already (without it, init names them and writes nothing)')
    .option('-C, --project <dir>', 'the directory, as for the other commands ([dir] wins when both are given)')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (dir: string | undefined, flags: { force?: boolean; json?: boolean; project?: string }) => setExit(await (await import('./init.js')).runInit(dir ?? flags.project, flags)));

  addCommonOptions(program.command('refresh <stage>')
    .description('copy the live data of a later stage (--from) into the idle slot\'s database of <stage>, then run <stage>\'s refresh.after SQL on the copy (e.g. rewrite e-mail addresses); the later stage is only read, from one consistent snapshot')
    .requiredOption('--from <stage>', 'the later stage whose live data is copied (e.g. prod)')
    .option('--slot <a|b>', 'the slot whose database is replaced (default: the idle one; never the live one)')
    .option('-n, --dry-run', 'print what would be copied and run; change nothing')
    .option('-s, --service <name>', 'only this service (repeat or comma-separate for several)', collect)
    .option('-w, --wait <seconds>', 'wait this long for <stage>\'s lock'))
    .addHelpText('after', '\nExamples:\n  updateserver refresh dev --from prod --dry-run\n  updateserver refresh dev --from prod --json     (a nightly job; then `updateserver flip dev` to serve it)')
    .action(async (stage: string, flags: PromoteFlags & { from?: string; slot?: string }) => setExit(await (await import('./refresh.js')).runRefresh(stage, flags)));

  const lb = program.command('lb').description('load balancer configuration');
  addCommonOptions(lb.command('render <stage>')
    .description('print the HAProxy configuration of each load balancer of <stage>, rendered from lb-templates/haproxy.cfg')
    .option('--check', 'also validate it with `haproxy -c` (needs haproxy on this machine)'))
    .action(async (stage: string, flags: PromoteFlags & { check?: boolean }) => setExit(await (await import('./lb.js')).runLbRender(stage, flags)));
  return program;
}

async function main(argv: string[]): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => { code = c; });
  try {
    await program.parseAsync(routeStageHelp(program, argv));
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors have been printed by commander.
      return err.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
    }
    return (await import('./output.js')).fail(err, argv.includes('--json'));
  }
  return code;
}

// The safety net under every command: whatever escapes (an error in a callback, a rejected promise
// nobody awaited) is reported as one line naming what was being done, exit status 1; the trace only
// with --verbose.
const lastResort = (err: unknown) => {
  void import('./output.js').then(({ fail }) => {
    process.exitCode = fail(err, process.argv.includes('--json'));
    process.exit();
  });
};
process.on('uncaughtException', lastResort);
process.on('unhandledRejection', lastResort);

process.exitCode = await main(process.argv);
// Everything is closed in finally blocks; should a library still hold a handle, the command ends anyway.
setTimeout(() => process.exit(), 3000).unref();
