/*
 * Reliability suite (issue 9), faults of the release itself: a build that fails on the hosts, a pre-switch
 * health check that fails, a post-switch check that fails (automatic rollback). Each fault is a release
 * made in dev that carries it; the heal is a fixed release, which the next `updateserver beta` promotes.
 * beta's database: shared (harness.ts): a write acknowledged by either slot, also by the new slot during
 * the seconds before the automatic rollback, must be in it.
 */
import { after, before, test } from 'node:test';
import { startFaultLab, withFault, type FaultLab } from './harness.js';

const CHECKS = `pre:
  - name: health
    http: { path: /health }
    deadlineMs: 3000
post:
  - name: release-ok
    http: { path: /, bodyContains: '"version":"ok-' }
    deadlineMs: 1000
`;
const BUILD = 'build: "if [ -e build-fails ]; then cat build-fails >&2; exit 7; fi"';

let fl: FaultLab;

before(async () => {
  fl = await startFaultLab({
    net: 131, devHealthPath: '/',
    betaServiceExtra: `    checks: web\n    ${BUILD}`,
    projectFiles: { 'healthchecks/web.yaml': CHECKS },
  });
});

after(async () => { await fl?.stop(); });

test('fault: a build failing — exit 1 naming the host, the command and its output; live untouched; a fixed release goes through', async (t) => {
  await withFault(fl, t, {
    release: { version: 'bad-build-1', files: { 'build-fails': 'npm ERR! Cannot find module left-pad\n' } },
    expect: { exit: 1, message: /updateserver: .*beta[12]: verify .* against its manifest, build it: .*\(exit 7\)[^]*npm ERR! Cannot find module left-pad/ },
    heal: async () => { await fl.release('ok-2'); },
  });
});

test('fault: the pre-switch check failing — exit 1 naming the check, the host and the status; live untouched; a fixed release goes through', async (t) => {
  await withFault(fl, t, {
    release: { version: 'bad-health-3', files: { 'health-status': '503\n' } },
    expect: { exit: 1, message: /updateserver: health-check the idle slot on every host failed: .*beta[12]: health check health \(pre, http\) .*status 503/i },
    heal: async () => { await fl.release('ok-4'); },
  });
});

test('fault: the post-switch check failing — automatic rollback to the old slot, exit 1 naming the check and the load balancer; a fixed release goes through', async (t) => {
  const { load } = await withFault(fl, t, {
    release: { version: 'bad-post-5' },
    expect: {
      exit: 1,
      message: /updateserver: check the new slot through every load balancer failed: lb: health check release-ok \(post, http\) on lb \(\S+\) failed: \S+: body does not contain .*version.*ok-/,
      also: [/traffic was switched back to the previous slot \(automatic rollback\)/],
    },
    heal: async () => { await fl.release('ok-6'); },
  });
  t.diagnostic(`served by release during the run: ${JSON.stringify(load.byRelease)}`);
});
