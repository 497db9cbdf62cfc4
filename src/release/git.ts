/*
 * Git as the first stage's source (seed 002 releases a tag): the ref is resolved to a commit before
 * anything changes, and the tree at that commit is exported without touching the repository's own
 * working tree. Also the revision of a plain source directory that happens to be a git checkout.
 */
import type { CodeSource, Stage } from '../config/model.js';
import { CommandFailed, ConfigError } from '../errors.js';
import { quote } from '../commands/shell.js';
import { runLocal } from '../transport/local.js';

/** A ref resolved: the commit, its short form for names, and the tag that points at it, if any. */
export interface GitCommit {
  commit: string;
  rev: string;
  tag: string | undefined;
}

/** Short commit as it goes into release names: fixed length, so names of one template line up. */
export const shortRev = (commit: string) => commit.slice(0, 7);

const git = (repo: string, ...args: string[]) => runLocal(['git', '-C', repo, ...args]);

/** Resolves the profile's ref; an unknown ref or repository is bad input, reported with the file and the ref. */
export async function resolveGitSource(stage: Stage, source: Extract<CodeSource, { kind: 'git' }>): Promise<GitCommit> {
  const found = await git(source.repo, 'rev-parse', '--verify', '--quiet', `${source.ref}^{commit}`);
  const commit = found.stdout.trim();
  if (found.code !== 0 || !/^[0-9a-f]{40,64}$/.test(commit)) {
    const why = found.stderr.trim().split('\n').pop() || `no tag, branch or commit "${source.ref}" there`;
    throw new ConfigError([{ file: stage.file, path: 'source.ref', message: `unknown ref "${source.ref}" in git repository ${source.repo}: ${why}` }],
      `list the tags with: git -C ${quote(source.repo)} tag`);
  }
  // Several tags on one commit: the ref itself if it is one of them, else the highest version.
  // versionsort.suffix=- puts v1.1.0-rc.1 below v1.1.0, as people read versions.
  const tags = (await git(source.repo, '-c', 'versionsort.suffix=-', 'tag', '--points-at', commit, '--sort=-version:refname')).stdout.split('\n').map((t) => t.trim()).filter(Boolean);
  const tag = tags.find((t) => t === source.ref || `refs/tags/${t}` === source.ref) ?? tags[0];
  return { commit, rev: shortRev(commit), tag };
}

/** Writes the tree of the commit into dir (which exists): git archive, unpacked by tar. */
export async function exportGitTree(repo: string, commit: string, dir: string): Promise<void> {
  const command = `set -o pipefail; git -C ${quote(repo)} archive --format=tar ${quote(commit)} | tar -x -C ${quote(dir)}`;
  const result = await runLocal(['bash', '-c', command]);
  if (result.code !== 0) throw new CommandFailed('local', command, result, `exporting ${commit} from ${repo}`);
}

/**
 * The revision of a source directory that is a git checkout: HEAD's short commit, with "+dirty" when
 * the directory has uncommitted changes (the release holds them, so the name must not claim the commit).
 * Undefined when the directory is not in a git work tree.
 */
export async function checkoutRev(dir: string): Promise<string | undefined> {
  const head = await git(dir, 'rev-parse', '--verify', '--quiet', 'HEAD');
  if (head.code !== 0 || !/^[0-9a-f]{40,64}$/.test(head.stdout.trim())) return undefined;
  const status = await git(dir, 'status', '--porcelain', '--', '.');
  return `${shortRev(head.stdout.trim())}${status.code !== 0 || status.stdout.trim() !== '' ? '+dirty' : ''}`;
}
