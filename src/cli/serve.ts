/*
 * `updateserver serve`: the web console (src/serve/). `--hash-password` reads a password from stdin
 * and prints the line to put in the users file, so that no password is ever stored.
 */
import { ConfigError, EXIT_OK } from '../errors.js';
import { fail } from './output.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';

export interface ServeFlags extends PromoteFlags { listen?: string; users?: string; hashPassword?: boolean }

async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += String(chunk);
  return text.replace(/\r?\n$/, '');
}

/** host:port, where host may be an IPv6 address in brackets. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !(port > 0 && port < 65536)) throw new ConfigError([{ file: 'command line', path: '--listen', message: `expected host:port (like 127.0.0.1:8700), found ${JSON.stringify(text)}` }]);
  return { host: m[1] ?? m[2]!, port };
}

export async function runServe(flags: ServeFlags): Promise<number> {
  try {
    const { hashPassword } = await import('../serve/passwords.js');
    if (flags.hashPassword) {
      const password = await readStdin();
      if (password.length < 12) throw new ConfigError([{ file: 'stdin', path: 'password', message: 'a console password has at least 12 characters' }]);
      process.stdout.write(`${await hashPassword(password)}\n`);
      return EXIT_OK;
    }
    const { host, port } = parseListen(flags.listen ?? '127.0.0.1:8700');
    if (!flags.users) throw new ConfigError([{ file: 'command line', path: '--users', message: 'the console needs a users file (anonymous access is refused)' }], 'see `updateserver serve --help`');
    const { loadUsers } = await import('../serve/users.js');
    const { Console } = await import('../serve/server.js');
    const users = await loadUsers(flags.users);
    const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
    const metricsToken = process.env.UPDATESERVER_METRICS_TOKEN || undefined;
    const console_ = new Console({ project: projectFrom(flags), users, secureCookies: !loopback, ...(metricsToken ? { metricsToken } : {}) });
    const server = await console_.listen(host, port);
    const address = server.address();
    process.stderr.write(`updateserver console on http://${host.includes(':') ? `[${host}]` : host}:${typeof address === 'object' && address ? address.port : port}/ (${users.size} user(s); Ctrl-C stops it)\n`);
    await new Promise<void>((resolve) => {
      const stop = () => server.close(() => resolve());
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
