import { spawn } from 'node:child_process';
import { UpdateserverError } from '../errors.js';

/**
 * Runs `producer | consumer` without a shell (each with its own environment), streaming; fails with
 * both programs' stderr when either exits non-zero.
 */
export function pipeCommands(producer: { argv: string[]; env: NodeJS.ProcessEnv }, consumer: { argv: string[]; env: NodeJS.ProcessEnv }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [pFile, ...pArgs] = producer.argv;
    const [cFile, ...cArgs] = consumer.argv;
    const p = spawn(pFile!, pArgs, { env: producer.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const c = spawn(cFile!, cArgs, { env: consumer.env, stdio: ['pipe', 'ignore', 'pipe'] });
    let pErr = '';
    let cErr = '';
    p.stderr.on('data', (d: Buffer) => { pErr = (pErr + d.toString()).slice(-4000); });
    c.stderr.on('data', (d: Buffer) => { cErr = (cErr + d.toString()).slice(-4000); });
    p.stdout.pipe(c.stdin);
    c.stdin.on('error', () => { /* the consumer died: its exit status tells */ });
    let pCode: number | null | undefined;
    let cCode: number | null | undefined;
    const done = () => {
      if (pCode === undefined || cCode === undefined) return;
      if (pCode === 0 && cCode === 0) return resolve();
      reject(new UpdateserverError(`${what} failed: ${pFile} exited ${pCode}, ${cFile} exited ${cCode}\n${(pErr + cErr).trim().split('\n').slice(-8).join('\n')}`));
    };
    p.on('error', (err) => reject(new UpdateserverError(`${what}: cannot run ${pFile}: ${err.message}`, { cause: err })));
    c.on('error', (err) => reject(new UpdateserverError(`${what}: cannot run ${cFile}: ${err.message}`, { cause: err })));
    p.on('close', (code) => { pCode = code; done(); });
    c.on('close', (code) => { cCode = code; done(); });
  });
}
