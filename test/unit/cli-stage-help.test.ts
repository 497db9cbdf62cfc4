/*
 * `updateserver <stage> --help` explains a promotion, exactly as `updateserver promote --help` does,
 * while `--help` of the program and of the other commands stay as they are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Command } from 'commander';
import { PACKAGE_DIR } from '../../src/package-dir.js';
import { routeStageHelp } from '../../src/cli/stage-help.js';

const CLI = join(PACKAGE_DIR, 'dist', 'bin', 'updateserver.js');
const help = (...args: string[]) => {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', COLUMNS: '100' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
};

test('routeStageHelp sends a stage\'s --help to promote, and leaves everything else alone', () => {
  const program = new Command('updateserver');
  program.command('promote <stage>', { isDefault: true });
  program.command('status <stage>');
  program.command('lb').command('render <stage>');
  const node = ['node', 'updateserver'];
  assert.deepEqual(routeStageHelp(program, [...node, 'prod', '--help']), [...node, 'promote', 'prod', '--help']);
  assert.deepEqual(routeStageHelp(program, [...node, 'beta', '-C', 'x', '-h']), [...node, 'promote', 'beta', '-C', 'x', '-h']);
  for (const args of [['--help'], ['status', 'prod', '--help'], ['promote', 'prod', '--help'], ['help', 'status'], ['lb', 'render', '--help'], ['prod'], ['prod', '--dry-run'], []]) {
    assert.deepEqual(routeStageHelp(program, [...node, ...args]), [...node, ...args], args.join(' '));
  }
});

test('updateserver prod --help prints the promotion\'s options, the same text as promote --help, exit 0', () => {
  const stage = help('prod', '--help');
  const promote = help('promote', '--help');
  assert.equal(stage.code, 0, stage.stderr);
  assert.equal(stage.stdout, promote.stdout);
  for (const option of ['--dry-run', '--service <name>', '--code-only', '--force', '--wait <seconds>', '--abandon', '--resume', '--json']) {
    assert.ok(stage.stdout.includes(option), `${option} in:\n${stage.stdout}`);
  }
  assert.doesNotMatch(stage.stdout, /Commands:/, 'not the top-level help');
  const top = help('--help');
  assert.equal(top.code, 0);
  assert.match(top.stdout, /Commands:/);
  assert.match(help('status', '--help').stdout, /^Usage: updateserver status \[options\] <stage>/);
});
