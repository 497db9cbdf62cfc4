import { spawn } from 'node:child_process';
import { UpdateserverError } from '../errors.js';
import { currentInstrument } from '../run/instrument.js';

/**
 * Runs `producer | consumer` without a shell (each with its own environment), streaming; fails with
 * both programs' stderr when either exits non-zero.
 */
export function pipeCommands(producer: { argv: string[]; env: NodeJS.ProcessEnv }, consumer: { argv: string[]; env: NodeJS.ProcessEnv }, what: string): Promise<void> {
  const local = currentInstrument()?.local;
  local?.(producer.argv);
  local?.(consumer.argv);
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
    let pSignal: NodeJS.Signals | null = null;
    let cSignal: NodeJS.Signals | null = null;
    let stoppedProducer = false;
    const how = (code: number | null, signal: NodeJS.Signals | null) => (code !== null ? `exited ${code}` : `was killed by ${signal}`);
    const done = () => {
      if (pCode === undefined || cCode === undefined) return;
      if (pCode === 0 && cCode === 0) return resolve();
      const producerSaid = stoppedProducer && pCode !== 0 ? `${pFile} was stopped (its output had nowhere to go)` : `${pFile} ${how(pCode, pSignal)}`;
      // A producer we stopped only complains about the closed pipe: the consumer's stderr says why.
      const stderr = stoppedProducer ? cErr : pErr + cErr;
      reject(new UpdateserverError(`${what} failed: ${producerSaid}, ${cFile} ${how(cCode, cSignal)}\n${stderr.trim().split('\n').slice(-8).join('\n')}`));
    };
    p.on('error', (err) => reject(new UpdateserverError(`${what}: cannot run ${pFile}: ${err.message}`, { cause: err })));
    c.on('error', (err) => reject(new UpdateserverError(`${what}: cannot run ${cFile}: ${err.message}`, { cause: err })));
    p.on('close', (code, signal) => { pCode = code; pSignal = signal; done(); });
    c.on('close', (code, signal) => {
      cCode = code;
      cSignal = signal;
      // The consumer is gone (pg_restore failed part-way): the producer would block for ever on a full
      // pipe, holding its snapshot open and the run with it. Stop it; the consumer's error is the cause.
      // A producer whose output has all been read is only finishing (pg_dump closing its session): wait.
      if (pCode === undefined && !p.stdout.readableEnded) {
        stoppedProducer = true;
        p.stdout.unpipe();
        p.stdout.destroy();
        p.kill('SIGTERM');
      }
      done();
    });
  });
}
