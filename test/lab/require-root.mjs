#!/usr/bin/env node
// Run before the integration tier (npm run test:integration). The tier runs real sshds, HAProxies and
// rsync in a lab on this machine (test/lab/lab.ts), which needs root and a few Debian packages (and wrk,
// the load generator of the switching tests).
// Silent when all is well; installs missing packages, saying so; exits 1 when it cannot go on.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const PACKAGES = ['haproxy', 'openssh-server', 'openssh-client', 'rsync', 'util-linux', 'wrk'];
const COMMANDS = ['haproxy', 'sshd', 'rsync', 'ssh', 'ssh-keygen', 'unshare', 'wrk'];

if (process.getuid?.() !== 0) {
  process.stderr.write(`The integration tier must run as root, and this is uid ${process.getuid?.() ?? 'unknown'}.
It starts a lab of "servers" on this machine (test/lab/lab.ts): one sshd per 127.x address, each in
its own mount namespace with a private /srv (unshare + mount need root), logged into as root the way
updateserver logs into real hosts, plus HAProxy, whose admin socket and reloads the tests drive.
Run it in a disposable root container or VM:  sudo npm run test:integration
The unit tier needs none of this:              npm run test:unit
`);
  process.exit(1);
}

function findCommand(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const missingCommands = () => COMMANDS.filter((name) => !findCommand(name));

function aptGet(args) {
  process.stdout.write(`require-root: apt-get ${args.join(' ')}\n`);
  const result = spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.error) process.stderr.write(`require-root: apt-get: ${result.error.message}\n`);
  return result.status === 0;
}

const missing = missingCommands();
if (missing.length > 0) {
  process.stdout.write(`require-root: the integration tier needs ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed; installing ${PACKAGES.join(' ')}\n`);
  const install = ['install', '-y', ...PACKAGES];
  if (!aptGet(install)) {
    // A fresh container often has no package lists yet.
    if (!aptGet(['update']) || !aptGet(install)) {
      process.stderr.write('require-root: apt-get failed; install the packages above by hand and run again\n');
      process.exit(1);
    }
  }
  const still = missingCommands();
  if (still.length > 0) {
    process.stderr.write(`require-root: still missing after installing: ${still.join(', ')}\n`);
    process.exit(1);
  }
}
