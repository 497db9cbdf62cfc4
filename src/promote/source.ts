/*
 * Where a promotion's code comes from, brought into the orchestrator's relay cache: the first stage
 * copies a local directory; every later stage pulls the previous stage's live release from one of
 * its hosts. Hosts of different stages never talk to each other.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Host, Project, Service, SlotName, Stage } from '../config/model.js';
import { CommandFailed, UpdateserverError } from '../errors.js';
import { MANIFEST, releaseDir } from '../commands/release.js';
import { remoteSpec, rsyncArgv, tunnelSpec } from '../commands/rsync.js';
import type { ExecTunnel } from '../transport/tunnel.js';
import { quote, quoteAll } from '../commands/shell.js';
import { run, type Transport } from '../transport/transport.js';
import { writeManifest } from '../release/manifest.js';
import { readVersion, releaseName } from '../release/name.js';
import { runLocal } from '../transport/local.js';

export interface SourceRelease {
  release: string;
  cacheDir: string;
  source: string;
}

export const cacheRoot = (project: Project, service: string) => join(project.stateDir, 'cache', service);

/** Newest cached release of the service: unchanged files are hard-linked from it. */
async function newestCached(root: string, except: string): Promise<string | undefined> {
  if (!existsSync(root)) return undefined;
  const entries = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== except);
  const withTimes = await Promise.all(entries.map(async (e) => ({ name: e.name, t: (await stat(join(root, e.name))).mtimeMs })));
  return withTimes.sort((a, b) => b.t - a.t)[0]?.name;
}

async function rsyncLocal(argv: string[], host: string, what: string): Promise<void> {
  const result = await runLocal(argv, { host });
  if (result.code !== 0) throw new CommandFailed(host, quoteAll(argv), result, what);
}

/** Copies the first stage's local source into the cache, names the release by its content. */
export async function stageLocalSource(project: Project, stage: Stage, service: Service, now: Date): Promise<SourceRelease> {
  const src = stage.sourcePath!;
  if (!existsSync(src)) {
    throw new UpdateserverError(`${stage.file}: source.path: directory ${src} does not exist`, { hint: 'point source.path at the directory holding the code to release' });
  }
  const root = cacheRoot(project, service.name);
  const staging = join(root, '.staging');
  await mkdir(root, { recursive: true });
  const previous = await newestCached(root, '.staging');
  await rsyncLocal(rsyncArgv({ source: `${src}/`, destination: `${staging}/`, excludes: [...service.exclude, '.git', MANIFEST],
    ...(previous ? { linkDest: `../${previous}` } : {}) }), 'local', `copying ${src} into the release cache`);
  const manifest = await writeManifest(staging);
  // Same content, same release: an unchanged source is not released twice under two names.
  const existing = existsSync(root) ? (await readdir(root)).find((n) => n.endsWith(`-${manifest.hash.slice(0, 8)}`)) : undefined;
  const release = existing ?? releaseName(readVersion(staging), manifest.hash, now);
  const cacheDir = join(root, release);
  if (existing) await rm(staging, { recursive: true, force: true });
  else await rename(staging, cacheDir);
  return { release, cacheDir, source: `${src} (${manifest.files} files)` };
}

/** Brings the previous stage's live release into the cache and checks it against its manifest. */
/**
 * Brings the previous stage's live release into the cache and checks it against its manifest. Only
 * the files the manifest lists travel: what the build step made on the source host (node_modules, a
 * virtualenv) is rebuilt on each target instead of being copied between stages.
 */
export async function pullStageRelease(project: Project, from: Stage, service: Service, transport: Transport, host: Host, release: string, slot: SlotName, tunnel?: ExecTunnel): Promise<SourceRelease> {
  const root = cacheRoot(project, service.name);
  await mkdir(root, { recursive: true });
  const cacheDir = join(root, release);
  const previous = await newestCached(root, release);
  const manifest = await run(transport, `cat ${quote(`${releaseDir(service, release)}/${MANIFEST}`)}`, { what: `reading the manifest of ${release}` });
  const list = join(root, `.files-${release}`);
  const paths = manifest.stdout.split('\n').filter(Boolean).map((line) => line.slice(line.indexOf('  ') + 2));
  await writeFile(list, [MANIFEST, ...paths].join('\n') + '\n');
  try {
    await rsyncLocal(rsyncArgv({
      source: tunnel ? tunnelSpec(host, `${releaseDir(service, release)}/`) : remoteSpec(host, `${releaseDir(service, release)}/`), destination: `${cacheDir}/`, remote: host, filesFrom: list,
      ...(tunnel ? { rsh: tunnel.rsh() } : {}),
      ...(previous ? { linkDest: `../${previous}` } : {}),
    }), host.name, `pulling release ${release} from stage ${from.name}`);
  } finally {
    await rm(list, { force: true });
  }
  const verify = await runLocal(['bash', '-c', `cd ${quoteAll([cacheDir])} && sha256sum --quiet --strict -c ${MANIFEST}`]);
  if (verify.code !== 0) {
    throw new CommandFailed(host.name, `sha256sum -c ${MANIFEST}`, verify, `release ${release} pulled from stage ${from.name} does not match its manifest`);
  }
  return { release, cacheDir, source: `stage ${from.name}, ${host.name}:${releaseDir(service, release)} (slot ${slot}, ${paths.length} files)` };
}

/** Bytes a release takes, for the disk check before copying. */
export async function releaseBytes(cacheDir: string): Promise<number> {
  const du = await runLocal(['du', '-sk', cacheDir]);
  return Number(du.stdout.split(/\s/)[0] ?? 0) * 1024;
}
