import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProfile } from '../config/load.js';
import { EXIT_OK, UpdateserverError } from '../errors.js';
import { loadHaproxyTemplate, renderHaproxyConfig } from '../lb/config.js';
import { runLocal } from '../transport/local.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';

export async function runLbRender(stageName: string, flags: PromoteFlags & { check?: boolean }): Promise<number> {
  try {
    const project = projectFrom(flags);
    const stage = await loadProfile(project, stageName);
    const template = loadHaproxyTemplate(project);
    const rendered = Object.values(stage.loadBalancers).map((lb) => ({ loadBalancer: lb.name, template: template.file, config: renderHaproxyConfig(stage, lb, { template }) }));
    if (flags.check) {
      for (const r of rendered) {
        // haproxy -c opens the map files it names; check against an empty copy so a missing file on this machine is no error.
        const dir = await mkdtemp(join(tmpdir(), 'updateserver-check-'));
        try {
          const lb = stage.loadBalancers[r.loadBalancer]!;
          const mapCopy = join(dir, 'map');
          await writeFile(mapCopy, '');
          const cfg = join(dir, 'haproxy.cfg');
          await writeFile(cfg, r.config.split(lb.mapFile).join(mapCopy));
          const res = await runLocal(['haproxy', '-c', '-f', cfg]);
          if (res.code !== 0) throw new UpdateserverError(`haproxy -c rejects the configuration of ${r.loadBalancer}:\n${(res.stdout + res.stderr).trim()}`, { hint: `fix ${template.file} or the profile` });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
    }
    if (flags.json) printJson(rendered);
    else for (const r of rendered) process.stdout.write(rendered.length > 1 ? `# ---- ${r.loadBalancer} ----\n${r.config}` : r.config);
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
