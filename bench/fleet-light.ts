/*
 * Fleet scale with a light app (issue 17): bench/fleet.ts with an app that starts in milliseconds
 * (test/lab/pipeline.ts LIGHT_APP_START: one perl process), so that 200 hosts measure the orchestrator and not
 * 200 Node start-ups on 2 cores. Targets: wall time <= 10 s, peak memory <= 150 MB, one SSH connection
 * per host.
 *
 *   npm run build && node dist/bench/fleet-light.js     (HOSTS=200 RUNS=2 NET=246 PARALLEL=64 by default; root needed)
 *
 * PARALLEL is beta's `parallel` (PARALLEL=0: the profile's default, 16); the busy-host figure is
 * checked against it.
 *
 * Writes bench/results/fleet-light.json.
 */
process.env.FLEET_APP ??= 'light';
await import('./fleet.js');
