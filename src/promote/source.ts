/*
 * Where a promotion's code comes from, brought into the orchestrator's relay cache: the first stage
 * copies a local directory or the tree of a git ref; every later stage pulls the previous stage's live release from one of
 * its hosts. Hosts of different stages never talk to each other.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Action } from '../plan/plan.js';
import type { Host, Project, Service, SlotName, Stage } from '../config/model.js';
import { CommandFailed, ConfigError, UpdateserverError } from '../errors.js';
import { createHash } from 'node:crypto';
import { MANIFEST, releaseDir } from '../commands/release.js';
import { rsyncArgv } from '../commands/rsync.js';
import { pullArgv, type RelayRoute } from '../commands/relay.js';
import type { ExecTunnel } from '../transport/tunnel.js';
import { quoteAll } from '../commands/shell.js';
import { writeManifest } from '../release/manifest.js';
import { RELEASE_NAME, readVersion, renderReleaseName, usesPlaceholder } from '../release/name.js';
import { checkoutRev, exportGitTree, type GitCommit } from '../release/git.js';
import { runLocal } from '../transport/local.js';
import type { Transport } from '../transport/transport.js';
import { readHostManifest } from '../observe/code-hash.js';

export interface SourceRelease {
  release: string;
  cacheDir: string;
  source: string;
  /** Its size when it is not in the cache (a dry run's staging copy, removed since), for the disk check. */
  bytes?: number;
  /** A later stage's pull into the cache, when the cache lacks the release (see planPull). */
  fetch?: { host: string; route: RelayRoute; argv: string[]; filesFrom: string };
}

export const cacheRoot = (project: Project, service: string) => join(project.stateDir, 'cache', service);

/** Newest cached release of the service: unchanged files are hard-linked from it. */
async function newestCached(root: string, except: string): Promise<string | undefined> {
  if (!existsSync(root)) return undefined;
  const entries = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== except);
  const withTimes = await Promise.all(entries.map(async (e) => ({ name: e.name, t: (await stat(join(root, e.name))).mtimeMs })));
  return withTimes.sort((a, b) => b.t - a.t)[0]?.name;
}

/**
 * Releases kept in the relay cache per service. Every promotion adds one; without a bound the state
 * directory grows for as long as the machine promotes. A pruned release is pulled again from the
 * previous stage's host if it is ever promoted, and a first stage's content re-released gets a new name.
 */
export const CACHE_KEPT = 10;

/**
 * Keeps the newest `keep` cached releases (by mtime: a release is touched whenever a run uses it, so
 * one that another run is relaying right now is among the newest) and always `current`.
 */
export async function pruneCache(root: string, current: string, keep = CACHE_KEPT): Promise<string[]> {
  if (!existsSync(root)) return [];
  const entries = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== current);
  const withTimes = await Promise.all(entries.map(async (e) => ({ name: e.name, t: (await stat(join(root, e.name))).mtimeMs })));
  const old = withTimes.sort((a, b) => b.t - a.t).slice(Math.max(0, keep - 1)).map((e) => e.name);
  for (const name of old) await rm(join(root, name), { recursive: true, force: true });
  return old;
}

/** Marks a cached release as just used (see pruneCache). */
async function touch(dir: string): Promise<void> {
  const now = new Date();
  await utimes(dir, now, now).catch(() => {});
}

async function rsyncLocal(argv: string[], host: string, what: string, env?: NodeJS.ProcessEnv): Promise<void> {
  const result = await runLocal(argv, { host, ...(env ? { env } : {}) });
  if (result.code !== 0) throw new CommandFailed(host, quoteAll(argv), result, what);
}

/** What names a release besides its content: the time, the data version, the git commit of a git source. */
export interface NamingFacts {
  now: Date;
  /** The data version the release will start with ({data}). */
  data: string;
  /** The resolved ref of a git source. */
  git: GitCommit | undefined;
}

/** The cached release with exactly this content, found by its manifest's hash whatever its name. */
async function cachedByHash(root: string, hash: string): Promise<string | undefined> {
  if (!existsSync(root)) return undefined;
  for (const e of await readdir(root, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const manifest = join(root, e.name, MANIFEST);
    if (existsSync(manifest) && createHash('sha256').update(await readFile(manifest)).digest('hex') === hash) return e.name;
  }
  return undefined;
}

/**
 * Copies the first stage's source (a directory, or the tree of a git ref) into the cache and names the
 * release with the service's template. Content already cached keeps the name it was given then.
 *
 * With `dryRun` the same copy is made into a temporary directory outside the state directory (the
 * release's name needs its manifest hash) and removed again: the cache is read, never written or
 * touched, and the size is measured there for the disk check.
 */
export async function stageFirstSource(project: Project, stage: Stage, service: Service, naming: NamingFacts, options: { dryRun?: boolean } = {}): Promise<SourceRelease> {
  const root = cacheRoot(project, service.name);
  if (!options.dryRun) {
    await mkdir(root, { recursive: true });
    return stageInto(root, root, stage, service, naming, false);
  }
  const work = await mkdtemp(join(tmpdir(), 'updateserver-dry-run-'));
  try {
    return await stageInto(root, work, stage, service, naming, true);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** stageFirstSource's work: `work` holds the staging (and git export) directories, `root` is the cache. */
async function stageInto(root: string, work: string, stage: Stage, service: Service, naming: NamingFacts, dryRun: boolean): Promise<SourceRelease> {
  const source = stage.source!;
  const staging = join(work, '.staging');
  let rev = naming.git?.rev;
  let from: string;
  let described: string;
  if (source.kind === 'path') {
    if (!existsSync(source.path)) {
      throw new UpdateserverError(`${stage.file}: source.path: directory ${source.path} does not exist`, { hint: 'point source.path at the directory holding the code to release' });
    }
    from = source.path;
    described = source.path;
    if (usesPlaceholder(service.releaseName, 'rev')) {
      rev = await checkoutRev(source.path);
      if (rev === undefined) {
        throw new ConfigError([{ file: stage.file, path: 'source.path', message: `release names of ${service.name} use {rev} (${service.releaseName}), but ${source.path} is not a git checkout` }],
          'release from a git ref (source: { git: <repository>, ref: <tag> }), or leave {rev} out of releaseName');
      }
    }
  } else {
    from = join(work, '.export');
    described = `${source.repo} at ${source.ref} (${naming.git!.rev})`;
    await rm(from, { recursive: true, force: true });
    await mkdir(from);
    await exportGitTree(source.repo, naming.git!.commit, from);
  }
  const previous = await newestCached(root, '.staging');
  try {
    // --link-dest is absolute: the staging directory of a dry run is outside the cache.
    await rsyncLocal(rsyncArgv({ source: `${from}/`, destination: `${staging}/`, excludes: [...service.exclude, '.git', MANIFEST],
      ...(previous ? { linkDest: join(root, previous) } : {}) }), 'local', `copying ${described} into the release cache`);
  } finally {
    if (source.kind === 'git') await rm(from, { recursive: true, force: true });
  }
  const manifest = await writeManifest(staging);
  // Same content, same release: an unchanged source is not released twice under two names.
  const existing = await cachedByHash(root, manifest.hash);
  if (existing) {
    await rm(staging, { recursive: true, force: true });
    if (!dryRun) {
      await touch(join(root, existing));
      await pruneCache(root, existing);
    }
    return { release: existing, cacheDir: join(root, existing), source: `${described} (${manifest.files} files, unchanged since ${existing})` };
  }
  const release = renderReleaseName(service.releaseName, { now: naming.now, version: readVersion(staging, naming.git?.tag), hash: manifest.hash, rev, data: naming.data });
  if (!RELEASE_NAME.test(release)) throw new UpdateserverError(`internal: release name "${release}" is not a valid directory name`);
  if (existsSync(join(root, release))) {
    await rm(staging, { recursive: true, force: true });
    throw new UpdateserverError(`release name ${release} (from "${service.releaseName}") already names other content of ${service.name}`, {
      hint: `add {hash} or {date} to releaseName in ${stage.file}, so that different code gets a different name`,
    });
  }
  const cacheDir = join(root, release);
  if (dryRun) return { release, cacheDir, source: `${described} (${manifest.files} files)`, bytes: await releaseBytes(staging) };
  await rename(staging, cacheDir);
  await pruneCache(root, release);
  return { release, cacheDir, source: `${described} (${manifest.files} files)` };
}

/** A pull of a release into the cache, as the plan shows it (ServicePlan.fetch). */
export type Fetch = NonNullable<SourceRelease['fetch']>;

/**
 * What bringing the previous stage's live release into the cache takes, read-only: nothing when the
 * cached copy already matches the source host's manifest (the usual case: this machine relayed the
 * release into the previous stage and still holds it), else the pull's exact argv. Only the files the
 * manifest lists travel: what the build step made on the source host (node_modules, a virtualenv) is
 * rebuilt on each target instead of being copied between stages. A dry run stops here.
 */
export async function planPull(project: Project, from: Stage, service: Service, host: Host, release: string, slot: SlotName, route: RelayRoute,
  /** The manifest as the source host has it (the pipeline guard read it). */
  manifestText: string): Promise<SourceRelease> {
  const root = cacheRoot(project, service.name);
  const cacheDir = join(root, release);
  const files = manifestText.split('\n').filter(Boolean).length;
  const described = `stage ${from.name}, ${host.name}:${releaseDir(service, release)} (slot ${slot}, ${files} files)`;
  // If the cached copy matches the manifest the source host has now, it is that release, byte for
  // byte, and a second transfer would only repeat it.
  if (await cachedCopyMatches(cacheDir, manifestText)) return { release, cacheDir, source: `${described}, already in the local cache` };
  const previous = await newestCached(root, release);
  const filesFrom = join(root, `.files-${release}`);
  const argv = pullArgv(route, host, { releaseDir: releaseDir(service, release), cacheDir, filesFrom, ...(previous ? { linkDest: `../${previous}` } : {}) });
  return { release, cacheDir, source: described, fetch: { host: host.name, route, argv, filesFrom } };
}

/**
 * Runs what planPull decided: marks a cached release used, or runs the pull exactly as planned (its
 * file list written from the manifest first) and checks the result against the manifest.
 */
export async function runPull(action: Extract<Action, { kind: 'pull' }>, manifestText: string, tunnel: ExecTunnel | undefined): Promise<void> {
  const { release, cacheDir, fetch } = action;
  const root = dirname(cacheDir);
  const from = { name: action.from };
  // The file list is the manifest the plan names, or the pull would check against another release.
  const hash = createHash('sha256').update(manifestText).digest('hex');
  if (hash !== action.manifestHash) throw new Error(`internal: the manifest of ${release} hashes to ${hash.slice(0, 16)}..., the plan says ${action.manifestHash.slice(0, 16)}...`);
  if (!fetch) {
    await touch(cacheDir);
    await pruneCache(root, release);
    return;
  }
  if (fetch.route === 'tunnel' && !tunnel) throw new Error(`internal: the pull of ${release} goes through the run's SSH connection, but none is open`);
  await mkdir(root, { recursive: true });
  await rm(cacheDir, { recursive: true, force: true });
  const paths = manifestText.split('\n').filter(Boolean).map((line) => line.slice(line.indexOf('  ') + 2));
  await writeFile(fetch.filesFrom, [MANIFEST, ...paths].join('\n') + '\n');
  try {
    await rsyncLocal(fetch.argv, fetch.host, `pulling release ${release} from stage ${from.name}`, fetch.route === 'tunnel' ? tunnel?.env() : undefined);
  } finally {
    await rm(fetch.filesFrom, { force: true });
  }
  const verify = await verifyCached(cacheDir);
  if (verify.code !== 0) {
    // Nothing that failed its check stays in the cache, where the next run could take it for the release.
    await rm(cacheDir, { recursive: true, force: true });
    throw new CommandFailed(fetch.host, `sha256sum -c ${MANIFEST}`, verify, `release ${release} pulled from stage ${from.name} does not match its manifest`);
  }
  await pruneCache(root, release);
}

/** Checks every file of a cached release against its manifest (a read: it changes nothing). */
export const verifyCachedArgv = (cacheDir: string): string[] => ['bash', '-c', `cd ${quoteAll([cacheDir])} && sha256sum --quiet --strict -c ${MANIFEST}`];

function verifyCached(cacheDir: string) {
  return runLocal(verifyCachedArgv(cacheDir));
}

/** True when the cached copy's manifest is the source's, and every file in it still matches. */
async function cachedCopyMatches(cacheDir: string, sourceManifest: string): Promise<boolean> {
  const cached = await readFile(join(cacheDir, MANIFEST), 'utf8').catch(() => undefined);
  if (cached === undefined || cached !== sourceManifest) return false;
  return (await verifyCached(cacheDir)).code === 0;
}

/** Bytes a release takes, for the disk check before copying. */
export async function releaseBytes(cacheDir: string): Promise<number> {
  const du = await runLocal(['du', '-sk', cacheDir]);
  return Number(du.stdout.split(/\s/)[0] ?? 0) * 1024;
}

/**
 * The previous stage's live release's manifest, for the pipeline guard (its hash) and the pull (its
 * text). The host reported the hash with its slots (readSourceSlots); a cached manifest with that
 * SHA-256 holds the very same bytes, so the usual case (this machine relayed the release into the
 * previous stage) costs no second exchange with the host. Otherwise the host is asked for it.
 */
export async function sourceManifest(project: Project, transport: Transport, service: Service, release: string, hash: string | undefined): Promise<{ hash: string; text: string }> {
  if (hash !== undefined) {
    const cached = await readFile(join(cacheRoot(project, service.name), release, MANIFEST)).catch(() => undefined);
    if (cached !== undefined && createHash('sha256').update(cached).digest('hex') === hash) return { hash, text: cached.toString('utf8') };
  }
  return readHostManifest(transport, service, release);
}
