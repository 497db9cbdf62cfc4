/*
 * One long-lived remote session per host (issue 17; the idea behind Mitogen): a bash started once,
 * through the user's login shell, on the host's one SSH connection, that takes the run's commands as
 * messages on its stdin and answers each with its exit status, stdout and stderr. The login shell's
 * start-up (~/.bashrc: pyenv, nvm, conda init; hundreds of ms on real servers) and the channel set-up
 * are then paid once per host per run instead of once per command. What runs does not change: every
 * command still runs in a bash of its own (a subshell of the session's, see SESSION_LOOP), in the
 * environment the login shell left, as `bash -c <command>` would; only how it travels changes.
 *
 * Wire format (bytes; one request and one reply per command, in order):
 *   request  `<id> <base64 stdin | -> <command as a bash $'...' string>\n`
 *   replies  `P <id> <pid>\n` once the command runs (its pid leads its own process group), then
 *            `R <id> <exit status> <stdout bytes> <stderr bytes>\n` followed by stdout and stderr,
 *            then `E <id>\n` once nothing of the command runs on the host any more.
 * Before the first reply the session prints READY_MARK and a token: whatever the login shell printed
 * before it (a chatty .bashrc) is skipped.
 *
 * A command's timeout kills that command's process group (through a channel of its own), not the
 * session; a status above 128 is a signal's (bash reports 128 + n, as for `wait`).
 */
import { quote } from '../commands/shell.js';

export const READY_MARK = '\x1eUPDATESERVER-SESSION';

/**
 * The loop the session's bash runs. Each command runs in a subshell of its own (so `exit`, `cd` or a
 * failure cannot end the session), with the loop's variables and arguments gone and $0 as `bash -c`
 * gives it, and with its output in files of the session's own temporary directory (removed when the
 * session ends), so stdout and stderr come back whole and separate.
 *
 * A subshell is a fork without an exec. Starting a program is the costly part of a command on a
 * host (the dynamic loader's set-up; in a virtual machine it traps to the hypervisor), and a run sends
 * several commands to each of hundreds of hosts: `setsid bash -c` cost two such starts per command.
 * Job control (`set -m`) gives each command's subshell a process group of its own, as setsid did, so a
 * timeout kills exactly that command; inside, job control is off again, so the command's own
 * background jobs behave as in `bash -c` (a slot's `setsid app &` execs in place). Job notices and the
 * loop's own errors go to /dev/null once the session is ready: its stderr is read only until then.
 */
export const SESSION_LOOP = [
  'd=$(mktemp -d) || exit 1',
  'trap \'rm -rf "$d"\' EXIT',
  `printf '${READY_MARK} %s\\n' "$1"`,
  'set -- ; set -m; exec 2>/dev/null',
  // Few forks per command (hundreds of hosts may share a machine's CPU): the command arrives as a
  // $'...' string that eval turns back into text, stdout and stderr are measured with one stat.
  'while read -r id i q; do',
  '  eval "c=$q" || exit 1',
  '  if [ "$i" = - ]; then : > "$d/i"; else base64 -d <<< "$i" > "$d/i" || exit 1; fi',
  '  ( set +m; BASH_ARGV0=bash; eval "unset c d i id p q s; $c" ) < "$d/i" > "$d/o" 2> "$d/e" & p=$!',
  '  echo "P $id $p"',
  '  wait "$p"; s=$?',
  // A command that printed nothing (most: start, stop, mark complete) costs no stat and no cat.
  '  if [ -s "$d/o" ] || [ -s "$d/e" ]; then',
  '    set -- $(stat -c %s "$d/o" "$d/e")',
  '    echo "R $id $s $1 $2"',
  '    cat "$d/o" "$d/e"',
  '  else echo "R $id $s 0 0"; fi',
  // Sent by bash itself once cat has exited: the host is done with the command only then, so a
  // caller that moves on to another host at the reply keeps at most `parallel` hosts at work.
  '  echo "E $id"',
  'done',
].join('\n');

/** The command sshd runs (through the login shell, once): the loop in a bash that reads no rc file. */
export function sessionCommand(token: string): string {
  return `exec bash --noprofile --norc -c ${quote(SESSION_LOOP)} updateserver-session ${quote(token)}`;
}

export function encodeRequest(id: number, command: string, input?: string): string {
  const stdin = input === undefined || input === '' ? '-' : Buffer.from(input).toString('base64');
  return `${id} ${stdin} ${bashString(command)}\n`;
}

/**
 * Text as a bash ANSI-C string, `$'...'`, on one line: printable ASCII as it is, every other byte
 * (newlines, quotes, backslashes, UTF-8) as `\xHH`. A command never holds a NUL byte.
 */
export function bashString(text: string): string {
  let out = "$'";
  for (const byte of Buffer.from(text)) {
    out += byte >= 0x20 && byte < 0x7f && byte !== 0x27 && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `${out}'`;
}

/** The command that kills a timed-out command's process group (it leads one: setsid). */
export const killCommand = (pid: number) => `kill -KILL -- -${pid} 2>/dev/null || kill -KILL ${pid} 2>/dev/null; true`;

export type Reply =
  | { kind: 'ready' }
  | { kind: 'started'; id: number; pid: number }
  | { kind: 'done'; id: number; code: number; stdout: Buffer; stderr: Buffer };

/** Splits the session's stdout into replies; push() returns those completed by the chunk. */
export class ReplyParser {
  private buffer: Buffer = Buffer.alloc(0);
  private ready = false;
  private body: { id: number; code: number; out: number; err: number } | undefined;
  /** A reply whose output has come, given out when its end line ("E <id>") follows. */
  private complete: Extract<Reply, { kind: 'done' }> | undefined;

  constructor(private readonly token: string) {}

  push(chunk: Buffer): Reply[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const replies: Reply[] = [];
    for (;;) {
      if (!this.ready) {
        const mark = Buffer.from(`${READY_MARK} ${this.token}\n`);
        const at = this.buffer.indexOf(mark);
        if (at < 0) {
          // Keep only what could still be the start of the mark.
          this.buffer = this.buffer.subarray(Math.max(0, this.buffer.length - mark.length));
          return replies;
        }
        this.buffer = this.buffer.subarray(at + mark.length);
        this.ready = true;
        replies.push({ kind: 'ready' });
        continue;
      }
      if (this.body) {
        const { id, code, out, err } = this.body;
        if (this.buffer.length < out + err) return replies;
        this.complete = { kind: 'done', id, code, stdout: this.buffer.subarray(0, out), stderr: this.buffer.subarray(out, out + err) };
        this.buffer = this.buffer.subarray(out + err);
        this.body = undefined;
        continue;
      }
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) return replies;
      const line = this.buffer.subarray(0, nl).toString('latin1');
      this.buffer = this.buffer.subarray(nl + 1);
      const started = /^P (\d+) (\d+)$/.exec(line);
      const done = /^R (\d+) (\d+) (\d+) (\d+)$/.exec(line);
      const end = /^E (\d+)$/.exec(line);
      if (end && this.complete && this.complete.id === Number(end[1])) {
        replies.push(this.complete);
        this.complete = undefined;
      } else if (started) replies.push({ kind: 'started', id: Number(started[1]), pid: Number(started[2]) });
      else if (done) this.body = { id: Number(done[1]), code: Number(done[2]), out: Number(done[3]), err: Number(done[4]) };
      else throw new Error(`unexpected line from the remote session: ${JSON.stringify(line.slice(0, 200))}`);
    }
  }
}

/**
 * A stream channel opened ahead of need: its shell (the login shell, then this bash) waits for one
 * line, the command as a bash $'...' string (bashString, as the session's requests), and runs it with
 * the channel's stdin and stdout (bash reads a pipe a byte at a time, so nothing after the line is
 * taken from the command). eval turns the string back into text: no program starts for it.
 */
export function spareStreamCommand(): string {
  return `exec bash --noprofile --norc -c ${quote('IFS= read -r q || exit 255; eval "c=$q" || exit 255; eval "$c"')}`;
}

/** The line the spare stream channel reads: the command it runs. */
export const spareStreamLine = (command: string) => `${bashString(command)}\n`;
