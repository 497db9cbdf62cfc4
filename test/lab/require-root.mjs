#!/usr/bin/env node
// The Debian packages of the integration tier and the benchmarks (sshd, HAProxy, rsync, wrk, the
// database servers and clients), installed with apt-get where missing; stops with one sentence when
// this is not root or has no apt-get. The list and the logic are in scripts/bootstrap.mjs, which
// `npm test` and `npm run demo` run first; this entry point stays for bench/run-all.ts.
import { main } from '../../scripts/bootstrap.mjs';

process.exitCode = await main('lab');
