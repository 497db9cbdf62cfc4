/*
 * Command lines of the database client tools used for snapshots. Passwords never appear here: they
 * are handed to each process in its own environment (PGPASSWORD / MYSQL_PWD), so `ps` shows nothing.
 */
import type { DatabaseConnection } from '../config/model.js';

/** The server-side setting that makes every transaction of a PostgreSQL session read-only (PGOPTIONS, or pg's options). */
export const READ_ONLY_OPTIONS = '-c default_transaction_read_only=on';

export function pgDumpArgv(src: DatabaseConnection, opts: { snapshot?: string; jobs: number; dir?: string }): string[] {
  const argv = ['pg_dump', '-h', src.host, '-p', String(src.port), '-U', src.user, '--no-password', '-d', src.database];
  if (opts.snapshot) argv.push(`--snapshot=${opts.snapshot}`);
  // The source's change log (what was written to it since it went live) is not the copy's: its rows stay behind.
  argv.push('--exclude-table-data=updateserver_changes');
  // Directory format for parallel jobs; otherwise custom format, uncompressed: it is piped straight into
  // pg_restore, so compressing only costs CPU on both ends.
  if (opts.jobs > 1 && opts.dir) argv.push('-Fd', '-j', String(opts.jobs), '-Z0', '-f', opts.dir);
  else argv.push('-Fc', '-Z0');
  return argv;
}

export function pgRestoreArgv(dst: DatabaseConnection, opts: { jobs: number; dir?: string }): string[] {
  const argv = ['pg_restore', '-h', dst.host, '-p', String(dst.port), '-U', dst.user, '--no-password', '-d', dst.database, '--no-owner', '--no-acl', '--exit-on-error'];
  if (opts.jobs > 1 && opts.dir) argv.push('-j', String(opts.jobs), opts.dir);
  return argv;
}

export function mysqldumpArgv(src: DatabaseConnection): string[] {
  return ['mysqldump', '-h', src.host, '-P', String(src.port), '-u', src.user, '--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', '--no-tablespaces', src.database];
}

export function mysqlArgv(dst: DatabaseConnection): string[] {
  return ['mysql', '-h', dst.host, '-P', String(dst.port), '-u', dst.user, dst.database];
}

/**
 * The child's environment: the caller's, plus the password in the variable the tool reads; for a
 * source, PostgreSQL sessions that refuse every write (PGOPTIONS reaches the server at connection).
 */
export function toolEnv(conn: DatabaseConnection, opts: { readOnly?: boolean } = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.PGPASSWORD;
  delete env.MYSQL_PWD;
  if (conn.password) env[conn.engine === 'postgres' ? 'PGPASSWORD' : 'MYSQL_PWD'] = conn.password.reveal();
  if (opts.readOnly && conn.engine === 'postgres') env.PGOPTIONS = [env.PGOPTIONS, READ_ONLY_OPTIONS].filter(Boolean).join(' ');
  return env;
}
