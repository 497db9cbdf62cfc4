/*
 * Validation time against profile size, up to the bound on a configuration file (issue 15: 5,000 keys
 * in one map took seconds, 40,000 minutes, before duplicate keys were found with one set per map).
 *
 *   npm run build && node dist/bench/validate.js       (SIZES_KB=16,32,64,128,256 RUNS=5; no lab, no root)
 *
 * For each size, two profiles of about that many kilobytes, read with loadPipeline as every command
 * reads them: a valid one (N hosts, one service on all of them: every cross-check runs over N hosts)
 * and a broken one (the same with an unknown key on every host: N problems, of which a screenful is
 * printed). The fastest of RUNS (the run least disturbed by other processes on a shared machine). Then a file twice the bound, refused before it is read.
 * Targets: linear growth (time per KB at the largest size within 2x of the cheapest size's) and the
 * largest (at the bound) validated within 1.5 s. Writes bench/results/validate.json.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline } from '../src/config/load.js';
import { MAX_FILE_BYTES } from '../src/config/limits.js';
import { ConfigError } from '../src/errors.js';
import { Knobs, startResult } from './result.js';

const knobs = new Knobs();
const sizesKb = knobs.numbers('SIZES_KB', '16,32,64,128,256');
const runs = knobs.number('RUNS', 5);
const result = startResult('validate', knobs);

/** A profile of about `bytes` bytes: `hosts` hosts, one service on all of them; `broken` adds an unknown key to each host. */
function profile(targetBytes: number, broken: boolean): { text: string; hosts: number } {
  const head = 'source: { path: app }\nloadBalancers:\n  lb: { socket: run/admin.sock, mapFile: run/slots.map }\nhosts:\n';
  const hostLine = (i: number) => `  h${i}: { address: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}${broken ? ', extra: 1' : ''} }\n`;
  const service = (n: number) => `services:\n  web:\n    hosts: [${Array.from({ length: n }, (_, i) => `h${i}`).join(', ')}]\n    root: /srv/web\n    listen: 8080\n    slots: { a: { port: 8001 }, b: { port: 8002 } }\n    start: ./server --port {port}\n`;
  // Each host costs its line and its name in the service's list.
  const perHost = hostLine(5000).length + ' h5000,'.length;
  const hosts = Math.max(1, Math.floor((targetBytes - head.length - service(0).length) / perHost));
  let text = head;
  for (let i = 0; i < hosts; i++) text += hostLine(i);
  return { text: text + service(hosts), hosts };
}

async function timeLoad(dir: string): Promise<{ ms: number; ok: boolean; problems: number; lines: number }> {
  const t0 = performance.now();
  try {
    await loadPipeline({ dir, stateDir: join(dir, '.u') }, 'prod');
    return { ms: performance.now() - t0, ok: true, problems: 0, lines: 0 };
  } catch (err) {
    const ms = performance.now() - t0;
    if (!(err instanceof ConfigError)) throw err;
    return { ms, ok: false, problems: err.issues.length, lines: err.message.split('\n').length };
  }
}

interface Row { kb: number; bytes: number; hosts: number; validMs: number; brokenMs: number; problems: number; linesShown: number; validUsPerKb: number; brokenUsPerKb: number }

const dir = await mkdtemp(join(tmpdir(), 'updateserver-bench-validate-'));
const rows: Row[] = [];
try {
  await mkdir(join(dir, 'profiles'));
  const file = join(dir, 'profiles', 'prod.yaml');
  // Warm up the loader (module compilation, JIT) on every size, so the first is not charged for it.
  for (const kb of sizesKb) {
    for (const broken of [false, true]) {
      await writeFile(file, profile(Math.min(kb * 1024, MAX_FILE_BYTES), broken).text);
      await timeLoad(dir);
    }
  }
  for (const kb of sizesKb) {
    const target = Math.min(kb * 1024, MAX_FILE_BYTES);
    const valid = profile(target, false);
    const broken = profile(target, true);
    const measure = async (text: string) => {
      await writeFile(file, text);
      const xs = [];
      for (let r = 0; r < runs; r++) xs.push(await timeLoad(dir));
      return { ms: Math.min(...xs.map((x) => x.ms)), last: xs[xs.length - 1]! };
    };
    const v = await measure(valid.text);
    if (!v.last.ok) throw new Error(`the valid profile of ${kb} KB was refused`);
    const b = await measure(broken.text);
    const bytes = Buffer.byteLength(valid.text);
    rows.push({
      kb, bytes, hosts: valid.hosts, validMs: Math.round(v.ms * 10) / 10, brokenMs: Math.round(b.ms * 10) / 10,
      problems: b.last.problems, linesShown: b.last.lines,
      validUsPerKb: Math.round((v.ms * 1000) / (bytes / 1024)), brokenUsPerKb: Math.round((b.ms * 1000) / (Buffer.byteLength(broken.text) / 1024)),
    });
    process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
  }
  // Twice the bound: refused from its size alone.
  await writeFile(file, `${profile(8 * 1024, false).text}# ${'x'.repeat(2 * MAX_FILE_BYTES)}\n`);
  const over = await timeLoad(dir);
  const first = rows[0]!;
  const last = rows[rows.length - 1]!;
  // Linear: the cost per KB at the largest size is not above the cheapest size's by more than noise
  // (a quadratic cost would make it 16x from 16 KB to 256 KB).
  const linear = {
    validRatio: Math.round((last.validUsPerKb / Math.min(...rows.map((r) => r.validUsPerKb))) * 100) / 100,
    brokenRatio: Math.round((last.brokenUsPerKb / Math.min(...rows.map((r) => r.brokenUsPerKb))) * 100) / 100,
  };
  const table = [
    `| profile size | hosts | valid: validated in (fastest of ${runs}) | µs per KB | broken (every host has an unknown key): refused in | µs per KB | problems found / lines printed |`,
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${Math.round(r.bytes / 1024)} KB | ${r.hosts} | ${r.validMs} ms | ${r.validUsPerKb} | ${r.brokenMs} ms | ${r.brokenUsPerKb} | ${r.problems} / ${r.linesShown} |`),
    '',
    `Time per KB at ${Math.round(last.bytes / 1024)} KB against the cheapest size's: ${linear.validRatio}x (valid), ${linear.brokenRatio}x (broken); 1x is exactly linear, a quadratic cost would be about ${Math.round(last.bytes / first.bytes)}x. A file of ${2 * MAX_FILE_BYTES} bytes (twice the bound) is refused in ${Math.round(over.ms * 10) / 10} ms.`,
  ].join('\n');
  process.stdout.write(`\n${table}\n`);
  process.stdout.write(`wrote ${await result.done({ boundBytes: MAX_FILE_BYTES, rows, linear, overBoundMs: Math.round(over.ms * 10) / 10, table })}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
