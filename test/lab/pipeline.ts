/*
 * A dev -> beta pipeline on the lab: the profiles of a project directory, the hosts they name and one
 * HAProxy per stage whose configuration is rendered from those very profiles by updateserver.
 * Used by the integration tests, the benchmarks and the demo.
 */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { loadProfile } from '../../src/config/load.js';
import type { Project } from '../../src/config/model.js';
import { renderHaproxyConfig } from '../../src/lb/config.js';
import { startLab, type Lab, type LabHaproxy, type LabOptions } from './lab.js';

import { REPO } from './spawn-cli.js';

export { REPO };
export const FIXTURE_APP = join(REPO, 'test', 'fixtures', 'app');

export interface PipelineOptions {
  /** Addresses are 127.0.<net>.x, so labs of different tests never collide. */
  net: number;
  betaHosts?: number;
  /** The lab directory; the project is <dir>/project. Default: a fresh temp dir. */
  dir?: string;
  /** Extra YAML lines for beta's web service (indented by the caller as service keys). */
  betaServiceExtra?: string;
  /**
   * beta's HAProxies (default 1): with 2, an HA pair `lb` on 127.0.<net>.2 and `lb2` on 127.0.<net>.3,
   * each with its own directory (haproxy-beta, haproxy-beta2), runtime socket and map file.
   */
  betaLoadBalancers?: 1 | 2;
  /**
   * Runtime sockets named in beta's profile instead of the real ones, by load balancer name (e.g. a
   * fault-injecting proxy in front of the real socket, test/lab/fault-socket.ts). The HAProxy itself
   * still listens on its own socket (`lbs.beta.socket`, `lb2.socket`), which the proxy forwards to.
   */
  betaSockets?: Partial<Record<'lb' | 'lb2', string>>;
  /** Older spelling of betaLoadBalancers: 2 with betaSockets: { lb2: socket }. */
  betaSecondLb?: { socket?: string };
  /** Extra top-level YAML lines for beta's profile (e.g. keepReleases: 3). */
  betaTopExtra?: string;
  /** Extra top-level YAML lines for dev's profile (e.g. the same `state:` as beta's). */
  devTopExtra?: string;
  /** Appended to the app's start command in both stages, e.g. `--db postgres://postgres@127.0.0.1:5432/{database}`. */
  appArgs?: string;
  /** Extra YAML lines for dev's web service. */
  devServiceExtra?: string;
  /** dev's health path; a lenient dev ('/') lets a release that fails beta's /health reach beta. */
  devHealthPath?: string;
  /** dev's health deadlineMs (default 4000): raise it to let a slowly starting release into dev. */
  devHealthDeadlineMs?: number;
  /** Files written into the project directory before the profiles are read, by relative path (e.g. healthchecks/web.yaml). */
  projectFiles?: Record<string, string>;
  /** A bigger release: this many files data/f0000.txt... of 1-4 KB each, of varied content (appDataFile), in the app. */
  appDataFiles?: number;
  keepDir?: boolean;
  /**
   * The app's start command in both stages (default: the sample app, `node server.mjs ...`); with
   * LIGHT_APP_START, the light app (light.pl, written into the app) that starts in milliseconds.
   */
  appStart?: string;
  /** Field hosts (test/lab/lab.ts LabOptions.field): a costly login shell and a network distance. */
  field?: LabOptions['field'];
}

export interface Pipeline {
  lab: Lab;
  project: Project;
  /** The first stage's source: change files here to make a new release. */
  appDir: string;
  lbs: Record<'dev' | 'beta', LabHaproxy>;
  /** beta's second HAProxy (`lb2` in the profile), with betaLoadBalancers: 2. */
  lb2?: LabHaproxy | undefined;
  /** Where clients reach each stage's web service (beta: through `lb`). */
  url: Record<'dev' | 'beta', string>;
  /** beta's web service through each of its load balancers, by profile name (lb, lb2). */
  betaUrls: Record<string, string>;
  betaHosts: string[];
  stop(): Promise<void>;
}

/**
 * An app that starts in a few milliseconds, so that a fleet of hundreds of hosts measures the
 * orchestrator and not hundreds of Node start-ups: every request gets 200 and the release in
 * X-Release. One perl process (perl-base, on every Debian host; builtins only, ~1.5 ms to start) serves
 * all requests: the earlier app
 * forked a shell per request (socat + bash), which put HAProxy's checks of hundreds of servers, each
 * once a second, on the same 2 cores as the run it measures; real servers would carry that themselves.
 */
export const LIGHT_APP_START = 'perl light.pl {address} {port} {release}';
const LIGHT_APP = {
  'light.pl': "# The light app (test/lab/pipeline.ts): one process that answers every request with 200 and the\n# release (argument 3) in X-Release. Perl's builtins only, no module: it starts in about a millisecond\n# and forks nothing per request.\nmy ($address, $port, $release) = @ARGV;\n# AF_INET 2, SOCK_STREAM 1, SOL_SOCKET 1, SO_REUSEADDR 2 (Linux); a struct sockaddr_in by hand.\nsocket(my $server, 2, 1, 0) or die \"light app: socket: $!\\n\";\nsetsockopt($server, 1, 2, pack('l', 1)) or die \"light app: setsockopt: $!\\n\";\nbind($server, pack('S n C4 x8', 2, $port, split(/\\./, $address))) or die \"light app: cannot listen on $address:$port: $!\\n\";\nlisten($server, 256) or die \"light app: listen: $!\\n\";\n$SIG{PIPE} = 'IGNORE';\nmy $response = \"HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\nX-Release: $release\\r\\n\\r\\nok\\n\";\nwhile (1) {\n  accept(my $client, $server) or next;\n  # A client that sends no request head within 2 s is dropped, so that it cannot stall the others.\n  eval {\n    local $SIG{ALRM} = sub { die \"timeout\\n\" };\n    alarm 2;\n    while (defined(my $line = <$client>)) { last if $line =~ /^\\r?\\n\\z/ }\n    alarm 0;\n    syswrite($client, $response);\n  };\n  alarm 0;\n  close $client;\n}\n",
};

function profile(opts: { from?: string; source?: string; lab: Lab; hosts: Array<[string, string]>; lbDir: string; lbAddress: string; lbSocket?: string; extra?: string; start?: string; healthPath?: string; healthDeadlineMs?: number; lb2?: { dir: string; address: string; socket?: string }; top?: string; appArgs?: string }): string {
  return [
    opts.from ? `from: ${opts.from}` : `source:\n  path: ${opts.source}`,
    ...(opts.top ? [opts.top] : []),
    'ssh:',
    '  user: root',
    `  port: 2222`,
    `  key: ${opts.lab.keyFile}`,
    `  knownHosts: ${opts.lab.knownHosts}`,
    'hosts:',
    ...opts.hosts.map(([n, a]) => `  ${n}: { address: ${a} }`),
    'loadBalancers:',
    '  lb:',
    `    socket: ${opts.lbSocket ?? `${opts.lbDir}/admin.sock`}`,
    `    mapFile: ${opts.lbDir}/backends.map`,
    `    address: ${opts.lbAddress}`,
    ...(opts.lb2 ? ['  lb2:', `    socket: ${opts.lb2.socket ?? `${opts.lb2.dir}/admin.sock`}`, `    mapFile: ${opts.lb2.dir}/backends.map`, `    address: ${opts.lb2.address}`] : []),
    'services:',
    '  web:',
    `    hosts: [${opts.hosts.map(([n]) => n).join(', ')}]`,
    '    root: /srv/web',
    '    listen: 8080',
    '    slots:',
    '      a: { port: 8001 }',
    '      b: { port: 8002 }',
    `    start: ${opts.start ?? 'node server.mjs --host {address} --port {port} --slot {slot} --release {release}'}${opts.appArgs ? ` ${opts.appArgs}` : ''}`,
    '    stopTimeoutMs: 5000',
    `    health: { path: ${opts.healthPath ?? '/health'}, deadlineMs: ${opts.healthDeadlineMs ?? 4000}, intervalMs: 50 }`,
    '    drainTimeoutMs: 5000',
    ...(opts.extra ? [opts.extra] : []),
    '',
  ].join('\n');
}

/** Path of the i-th generated data file, relative to the app directory. */
export const appDataPath = (i: number) => `data/f${String(i).padStart(4, '0')}.txt`;

/**
 * Content of the i-th generated data file (variant 0 at first; another variant changes it): 1-4 KB of
 * pseudo-random base64 lines, deterministic, so runs are comparable and rsync finds nothing to share.
 */
export function appDataFile(i: number, variant = 0): string {
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(variant + 1, 0x85ebca6b)) >>> 0 || 1;
  const next = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 2 ** 32; };
  const size = 1024 + Math.floor(next() * 3072);
  const bytes = Buffer.alloc(Math.ceil(size * 3 / 4));
  for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(next() * 256);
  return `${bytes.toString('base64').slice(0, size - 1).replace(/(.{76})/g, '$1\n')}\n`;
}

export async function writeAppData(appDir: string, count: number): Promise<void> {
  await mkdir(join(appDir, 'data'), { recursive: true });
  for (let i = 0; i < count; i++) await writeFile(join(appDir, appDataPath(i)), appDataFile(i));
}

export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const n = opts.net;
  const betaCount = opts.betaHosts ?? 2;
  const betaHosts = Array.from({ length: betaCount }, (_, i) => [`beta${i + 1}`, `127.0.${n}.${12 + i}`] as [string, string]);
  const lab = await startLab({
    ...(opts.dir ? { dir: opts.dir } : {}), keepDir: opts.keepDir ?? false, ...(opts.field ? { field: opts.field } : {}),
    hosts: [{ name: 'dev1', address: `127.0.${n}.11` }, ...betaHosts.map(([name, address]) => ({ name, address }))],
  });
  try {
    const projectDir = join(lab.dir, 'project');
    const appDir = join(projectDir, 'app');
    await mkdir(join(projectDir, 'profiles'), { recursive: true });
    await cp(FIXTURE_APP, appDir, { recursive: true });
    if (opts.appDataFiles) await writeAppData(appDir, opts.appDataFiles);
    if (opts.appStart === LIGHT_APP_START) for (const [file, text] of Object.entries(LIGHT_APP)) await writeFile(join(appDir, file), text);
    const lbAddress = { dev: `127.0.${n}.1`, beta: `127.0.${n}.2` };
    await writeFile(join(projectDir, 'profiles', 'dev.yaml'), profile({
      source: appDir, lab, hosts: [['dev1', `127.0.${n}.11`]], lbDir: join(lab.dir, 'haproxy-dev'), lbAddress: lbAddress.dev, healthPath: opts.devHealthPath, extra: opts.devServiceExtra, healthDeadlineMs: opts.devHealthDeadlineMs, appArgs: opts.appArgs, top: opts.devTopExtra, ...(opts.appStart ? { start: opts.appStart } : {}),
    }));
    const sockets = { ...opts.betaSockets, ...(opts.betaSecondLb?.socket ? { lb2: opts.betaSecondLb.socket } : {}) };
    const twoLbs = opts.betaLoadBalancers === 2 || opts.betaSecondLb !== undefined;
    const lb2Address = `127.0.${n}.3`;
    await writeFile(join(projectDir, 'profiles', 'beta.yaml'), profile({
      from: 'dev', lab, hosts: betaHosts, lbDir: join(lab.dir, 'haproxy-beta'), lbAddress: lbAddress.beta, extra: opts.betaServiceExtra, top: opts.betaTopExtra, appArgs: opts.appArgs, ...(opts.appStart ? { start: opts.appStart } : {}),
      ...(sockets.lb ? { lbSocket: sockets.lb } : {}),
      ...(twoLbs ? { lb2: { dir: join(lab.dir, 'haproxy-beta2'), address: lb2Address, ...(sockets.lb2 ? { socket: sockets.lb2 } : {}) } } : {}),
    }));
    for (const [file, text] of Object.entries(opts.projectFiles ?? {})) {
      await mkdir(dirname(join(projectDir, file)), { recursive: true });
      await writeFile(join(projectDir, file), text);
    }
    const project: Project = { dir: projectDir, stateDir: join(projectDir, '.updateserver') };
    const lbs = {} as Record<'dev' | 'beta', LabHaproxy>;
    for (const name of ['dev', 'beta'] as const) {
      const stage = await loadProfile(project, name);
      const lb = stage.loadBalancers.lb!;
      const ownSocket = name === 'beta' && sockets.lb !== undefined;
      lbs[name] = await lab.startHaproxy(name, (paths) => {
        if ((!ownSocket && paths.socket !== lb.socket) || paths.mapFile !== lb.mapFile) throw new Error(`lab paths ${paths.socket} ${paths.mapFile} differ from the profile's`);
        // With a socket of its own in the profile (a proxy), the real HAProxy keeps the lab's.
        return renderHaproxyConfig(stage, ownSocket ? { ...lb, socket: paths.socket } : lb);
      });
    }
    let lb2: LabHaproxy | undefined;
    if (twoLbs) {
      const stage = await loadProfile(project, 'beta');
      const second = stage.loadBalancers.lb2!;
      // The real HAProxy listens on its own socket; the profile may name a proxy in front of it.
      lb2 = await lab.startHaproxy('beta2', (paths) => renderHaproxyConfig(stage, { ...second, socket: paths.socket }));
    }
    return {
      lab, project, appDir, lbs, lb2, betaHosts: betaHosts.map(([h]) => h),
      url: { dev: `http://${lbAddress.dev}:8080`, beta: `http://${lbAddress.beta}:8080` },
      betaUrls: { lb: `http://${lbAddress.beta}:8080`, ...(twoLbs ? { lb2: `http://${lb2Address}:8080` } : {}) },
      stop: () => lab.stop(),
    };
  } catch (err) {
    await lab.stop();
    throw err;
  }
}
