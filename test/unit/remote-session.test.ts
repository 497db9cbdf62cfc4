// The remote session's wire format (src/transport/session.ts): the loop run by a local bash, exactly
// as sshd would run it on a host, answers each command with its status, stdout and stderr; the
// parser skips what a chatty login shell prints first and handles replies split across chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { encodeRequest, ReplyParser, READY_MARK, SESSION_LOOP, type Reply } from '../../src/transport/session.js';

test('the parser skips the login shell\'s chatter and reassembles replies split anywhere', () => {
  const wire = Buffer.concat([
    Buffer.from(`Welcome to pyenv!\n${READY_MARK} tok\n`),
    Buffer.from('P 1 4242\nR 1 3 6 4\nhello\nerr\nE 1\n'),
    Buffer.from('P 2 4243\nR 2 0 0 0\nE 2\n'),
  ]);
  for (const size of [1, 3, 7, wire.length]) {
    const parser = new ReplyParser('tok');
    const replies: Reply[] = [];
    for (let i = 0; i < wire.length; i += size) replies.push(...parser.push(wire.subarray(i, i + size)));
    assert.deepEqual(replies.map((r) => (r.kind === 'done' ? { ...r, stdout: r.stdout.toString(), stderr: r.stderr.toString() } : r)), [
      { kind: 'ready' },
      { kind: 'started', id: 1, pid: 4242 },
      { kind: 'done', id: 1, code: 3, stdout: 'hello\n', stderr: 'err\n' },
      { kind: 'started', id: 2, pid: 4243 },
      { kind: 'done', id: 2, code: 0, stdout: '', stderr: '' },
    ], `chunks of ${size}`);
  }
});

test('a reply line the session never sends is an error, not a silent hang', () => {
  const parser = new ReplyParser('tok');
  assert.throws(() => parser.push(Buffer.from(`${READY_MARK} tok\nbogus\n`)), /unexpected line from the remote session/);
});

test('the session loop runs each command in its own bash: status, stdout, stderr and stdin per command; exit and cd do not end it', async () => {
  const bash = spawn('bash', ['--noprofile', '--norc', '-c', SESSION_LOOP, 'updateserver-session', 'tok'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const parser = new ReplyParser('tok');
  const done: Reply[] = [];
  bash.stdout.on('data', (chunk: Buffer) => done.push(...parser.push(chunk).filter((r) => r.kind === 'done')));
  const commands: Array<[string, string?]> = [
    ['cd /tmp && echo "$PWD" && echo oops >&2 && exit 3'],
    ['pwd; printf "a\\nb\\n\\n"'],
    ['cat; printf "%s" "$0"', 'line one\nline \'two\' "quoted" é\n'],
    ['printf "no newline"'],
    ["printf '%s|' 'back\\slash' \"tab\tand \\$HOME\" $'x\\ty' \"$(printf '\\x27')\"; echo"],
  ];
  commands.forEach(([c, input], i) => bash.stdin.write(encodeRequest(i + 1, c, input)));
  bash.stdin.end();
  await new Promise((resolve) => bash.on('close', resolve));
  const got = done.map((r) => (r.kind === 'done' ? [r.id, r.code, r.stdout.toString(), r.stderr.toString()] : []));
  assert.deepEqual(got, [
    [1, 3, '/tmp\n', 'oops\n'],
    [2, 0, `${process.cwd()}\na\nb\n\n`, ''],
    [3, 0, 'line one\nline \'two\' "quoted" é\nbash', ''],
    [4, 0, 'no newline', ''],
    [5, 0, 'back\\slash|tab\tand $HOME|x\ty|\'|\n', ''],
  ]);
});

test('the spare stream channel runs the one command it is sent, which then reads the rest of stdin', async () => {
  const { spareStreamCommand, spareStreamLine } = await import('../../src/transport/session.js');
  const sh = spawn('bash', ['-c', spareStreamCommand()], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  sh.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  sh.stdin.write(spareStreamLine("printf '%s|' \"$(head -c 5)\"; cat; exit 7"));
  sh.stdin.end('hello world\nline 2\n');
  const code = await new Promise((resolve) => sh.on('close', resolve));
  assert.equal(code, 7);
  assert.equal(out, 'hello| world\nline 2\n');
});

test('a command runs in a process group of its own, without job control inside: its background job shares that group, and killing the group ends both', async () => {
  const bash = spawn('bash', ['--noprofile', '--norc', '-c', SESSION_LOOP, 'updateserver-session', 'tok'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const parser = new ReplyParser('tok');
  const replies: Reply[] = [];
  bash.stdout.on('data', (chunk: Buffer) => replies.push(...parser.push(chunk)));
  // The group of the command's own process, its background job's, and the session loop's.
  bash.stdin.write(encodeRequest(1, 'sleep 30 & j=$!; echo "$(ps -o pgid= -p $BASHPID) $(ps -o pgid= -p $j) $j $c$d$q$id"; wait'));
  const started = await waitForReply(replies, (r) => r.kind === 'started' && r.id === 1);
  const groups = await waitForOutput(started.pid);
  const [own, job, sleeper, leftovers] = groups;
  assert.equal(own, String(started.pid), 'the command leads its own process group');
  assert.equal(job, own, 'its background job stays in that group (no job control inside the command)');
  assert.equal(leftovers, undefined, 'the loop\'s variables are not the command\'s');
  process.kill(-started.pid, 'SIGKILL');
  const done = await waitForReply(replies, (r) => r.kind === 'done' && r.id === 1);
  assert.equal(done.kind === 'done' && done.code, 137, 'the status of a command killed by KILL');
  bash.stdin.end();
  await waitForGone(Number(sleeper));
  await new Promise((resolve) => bash.on('close', resolve));

  async function waitForOutput(pid: number): Promise<string[]> {
    // The command prints while it runs: read its stdout file through /proc (the session's temp dir).
    for (let i = 0; i < 200; i++) {
      try {
        const text = readFileSync(`/proc/${pid}/fd/1`, 'utf8');
        if (text.endsWith('\n')) return text.trim().split(/\s+/);
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the command printed nothing');
  }
});

/** Gone, or a zombie (killed, its parent gone too, and not yet reaped by pid 1). */
async function waitForGone(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    let state: string | undefined;
    try { state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]; } catch { return; }
    if (state === 'Z') return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`process ${pid} (the command's background job) outlived its group's KILL`);
}

async function waitForReply(replies: Reply[], match: (r: Reply) => boolean): Promise<Reply & { pid: number }> {
  for (let i = 0; i < 500; i++) {
    const found = replies.find(match);
    if (found) return found as Reply & { pid: number };
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no such reply');
}
