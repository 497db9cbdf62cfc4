/*
 * What a promotion changes, for the release mail (issue 19): the files added, changed and removed
 * between the previous live release and the new one, from their manifests (every file's SHA-256), and
 * the commits between them when the pipeline's source is git and both release names carry a commit
 * that the repository knows ({rev} in the release name). Read-only; any failure is "unknown", never an
 * error of the run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Project, Stage } from '../config/model.js';
import { loadPipeline } from '../config/load.js';
import { MANIFEST } from '../commands/release.js';
import { readHostManifest } from '../observe/code-hash.js';
import { runLocal } from '../transport/local.js';
import type { TransportPool } from '../transport/pool.js';
import type { Plan } from '../plan/plan.js';
import { describeError } from '../errors.js';

export interface ReleaseChanges {
  service: string;
  from: string;
  to: string;
  files?: { added: number; changed: number; removed: number };
  commits?: string[];
  /** Why files or commits are missing, when they are. */
  note?: string;
}

/** sha256sum lines ("<hash>  <file>") as file -> hash. */
export function manifestEntries(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

export function compareManifests(before: string, after: string): { added: number; changed: number; removed: number } {
  const [a, b] = [manifestEntries(before), manifestEntries(after)];
  let added = 0; let changed = 0; let removed = 0;
  for (const [f, h] of b) { if (!a.has(f)) added++; else if (a.get(f) !== h) changed++; }
  for (const f of a.keys()) if (!b.has(f)) removed++;
  return { added, changed, removed };
}

const HEX = /(?:^|[^0-9a-f])([0-9a-f]{7,40})(?![0-9a-f])/g;

/** The first run of hex digits in a release name that the repository knows as a commit ({rev}; not {hash}). */
async function commitIn(repo: string, release: string): Promise<string | undefined> {
  for (const m of release.matchAll(HEX)) {
    const r = await runLocal(['git', '-C', repo, 'rev-parse', '--verify', '--quiet', `${m[1]}^{commit}`], { timeoutMs: 10_000 });
    if (r.code === 0) return r.stdout.trim();
  }
  return undefined;
}

/** The commits from one release's commit to the other's (at most 50), newest first, as `git log --oneline` prints them. */
export async function commitsBetween(repo: string, from: string, to: string): Promise<string[] | undefined> {
  const [a, b] = [await commitIn(repo, from), await commitIn(repo, to)];
  if (!a || !b) return undefined;
  const r = await runLocal(['git', '-C', repo, 'log', '--oneline', '--no-decorate', '-n', '50', `${a}..${b}`], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : undefined;
}

/** The git repository at the start of the stage's pipeline, if its source is git. */
async function gitRepoOf(project: Project, stage: Stage): Promise<string | undefined> {
  const chain = await loadPipeline(project, stage.name);
  const first = chain.at(-1)?.source;
  return first?.kind === 'git' ? first.repo : undefined;
}

/**
 * The changes of each promoted service since its previous live release: the new manifest from the
 * local relay cache, the previous one from the service's first host.
 */
export async function releaseChanges(project: Project, stage: Stage, plan: Plan, pool: TransportPool, cacheDirs: Record<string, string>): Promise<ReleaseChanges[]> {
  const repo = await gitRepoOf(project, stage).catch(() => undefined);
  return Promise.all(plan.services.map(async (s): Promise<ReleaseChanges> => {
    const base = { service: s.service, from: s.liveRelease ?? '', to: s.release };
    if (s.liveRelease === undefined) return { ...base, note: 'first release of this stage' };
    try {
      const service = stage.services[s.service]!;
      const [before, after] = await Promise.all([
        readHostManifest(pool.get(s.hosts[0]!), service, s.liveRelease).then((m) => m.text),
        readFile(join(cacheDirs[s.service] ?? '', MANIFEST), 'utf8'),
      ]);
      const commits = repo ? await commitsBetween(repo, s.liveRelease, s.release) : undefined;
      return { ...base, files: compareManifests(before, after), ...(commits ? { commits } : {}) };
    } catch (err) {
      return { ...base, note: `could not compare: ${describeError(err).split('\n')[0]}` };
    }
  }));
}
