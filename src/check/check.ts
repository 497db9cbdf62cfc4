/*
 * `updateserver check <stage>`: everything a promotion into the stage needs, tried without changing
 * anything. Offline first (profiles, templates, source, migrations); when the profiles are valid, then
 * every host, load balancer and database of the stage. Every failure comes with its fix.
 */
import { existsSync } from 'node:fs';
import type { Project } from '../config/model.js';
import { releaseBytes } from '../promote/source.js';
import { runLocal } from '../transport/local.js';
import { probeDatabases } from './databases.js';
import { ok, problem, type Finding } from './finding.js';
import { probeHosts } from './hosts.js';
import { probeLoadBalancers } from './load-balancers.js';
import { checkOffline } from './offline.js';
import { probeStateStore } from './state-store.js';

export interface CheckReport {
  stage: string;
  ok: boolean;
  /** 0 every check passed, 2 a project file is bad input (profiles, health checks, migrations, template), else 1. */
  exitCode: 0 | 1 | 2;
  findings: Finding[];
}

export interface CheckOptions {
  /** Only what needs no network. */
  offline?: boolean;
}

/** The orchestrator relays every release through its own cache with rsync. */
async function localRsync(): Promise<Finding> {
  const res = await runLocal(['sh', '-c', 'command -v rsync']);
  return res.code === 0
    ? ok('this machine', 'rsync', res.stdout.trim())
    : problem('this machine', 'rsync', 'rsync is not installed here; releases are copied with it', 'install it: apt-get install rsync (Debian/Ubuntu), dnf install rsync (RHEL/Fedora)');
}

export async function checkStage(project: Project, stageName: string, options: CheckOptions = {}): Promise<CheckReport> {
  const offline = await checkOffline(project, stageName);
  const findings = [...offline.findings, await localRsync()];
  if (offline.pipeline !== undefined && !options.offline) {
    const stage = offline.pipeline[0]!;
    const first = offline.pipeline[offline.pipeline.length - 1]!.source;
    // A git source's size is known only once exported; the margin alone is checked then.
    const source = first?.kind === 'path' ? first.path : undefined;
    const size = source !== undefined && existsSync(source) ? await releaseBytes(source) : 0;
    const hosts = await probeHosts(stage, size);
    try {
      findings.push(await probeStateStore(project, stage), ...hosts.findings, ...(await probeLoadBalancers(stage, hosts.transports)), ...(await probeDatabases(stage)));
    } finally {
      await Promise.allSettled([...hosts.transports.values()].map((t) => t.close()));
    }
  }
  const ok = findings.every((f) => f.ok);
  return { stage: stageName, ok, exitCode: ok ? 0 : findings.some((f) => !f.ok && f.badInput) ? 2 : 1, findings };
}
