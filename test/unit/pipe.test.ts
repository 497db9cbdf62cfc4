import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeCommands } from '../../src/data/pipe.js';

const env = process.env;

test('pipeCommands streams producer | consumer and resolves when both exit 0', async () => {
  await pipeCommands({ argv: ['sh', '-c', 'head -c 1000000 /dev/zero'], env }, { argv: ['sh', '-c', '[ "$(wc -c)" -eq 1000000 ]'], env }, 'copying');
});

test('a consumer that fails part-way stops the producer instead of leaving it blocked on a full pipe', async () => {
  const started = Date.now();
  // 100 MB never fit a pipe buffer: without stopping the producer this would hang for ever.
  const failure = pipeCommands({ argv: ['sh', '-c', 'head -c 100000000 /dev/zero'], env },
    { argv: ['sh', '-c', 'head -c 100 >/dev/null; echo "restore: error: cut off" >&2; exit 1'], env }, 'copying a into b');
  await assert.rejects(failure, (err: Error) => {
    assert.match(err.message, /^copying a into b failed: sh was stopped \(its output had nowhere to go\), sh exited 1\nrestore: error: cut off$/);
    return true;
  });
  assert.ok(Date.now() - started < 5000, `rejected after ${Date.now() - started} ms`);
});

test('a producer that fails is reported with its exit status and stderr', async () => {
  await assert.rejects(pipeCommands({ argv: ['sh', '-c', 'echo "dump: error: no such table" >&2; exit 3'], env }, { argv: ['sh', '-c', 'cat >/dev/null'], env }, 'copying'),
    { message: 'copying failed: sh exited 3, sh exited 0\ndump: error: no such table' });
});

test('a producer that is still finishing after all its output was read is not stopped', async () => {
  // The consumer exits first; the producer closed its stdout and exits a moment later, with 0.
  await pipeCommands({ argv: ['sh', '-c', 'echo data; exec >&-; sleep 0.3'], env }, { argv: ['sh', '-c', 'cat >/dev/null'], env }, 'copying');
});
