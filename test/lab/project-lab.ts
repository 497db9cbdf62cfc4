/*
 * A lab for a whole project, built from its own profiles: every host they name (an sshd on its address)
 * and one HAProxy per stage, rendered from the project's lb-templates/. The profiles must point their
 * SSH key, known_hosts, runtime sockets and map files into <project>/.lab, where the lab puts them, as
 * the repository's profiles do. Used by the demo and by the test that runs the demo's pipeline from a
 * clone of the repository; the slot databases the profiles name are dropped before and after.
 */
import { get } from 'node:http';
import { join } from 'node:path';
import { loadPipeline } from '../../src/config/load.js';
import type { Project, Stage } from '../../src/config/model.js';
import { loadHaproxyTemplate, renderHaproxyConfig } from '../../src/lb/config.js';
import { startLab, type Lab, type LabHaproxy } from './lab.js';
import { sql } from './pg.js';

export interface ProjectLab {
  lab: Lab;
  /** The stages by name, as loaded from the profiles. */
  stages: Record<string, Stage>;
  haproxies: Record<string, LabHaproxy>;
  /** Where clients reach a service of a stage: http://<load balancer address>:<listen>/ */
  url(stage: string, service?: string): string;
  stop(): Promise<void>;
}

/** The lab directory of a project: the profiles' relative `.lab/...` paths point here. */
export const labDirOf = (project: Project) => join(project.dir, '.lab');

/** Every database of the stages' services (both slots), PostgreSQL only: those are what the demo uses. */
export function slotDatabases(stages: Stage[]): string[] {
  const names = new Set<string>();
  for (const stage of stages) {
    for (const service of Object.values(stage.services)) {
      if (service.database?.engine === 'postgres') for (const name of Object.values(service.database.names)) names.add(name);
    }
  }
  return [...names];
}

export async function dropDatabases(names: string[]): Promise<void> {
  for (const name of names) await sql('postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** Starts the lab of `last`'s pipeline (e.g. prod: dev, beta, test and prod). */
export async function startProjectLab(project: Project, last: string): Promise<ProjectLab> {
  const pipeline = (await loadPipeline(project, last)).reverse();
  const databases = slotDatabases(pipeline);
  await dropDatabases(databases);
  const hosts = new Map<string, string>();
  for (const stage of pipeline) for (const host of Object.values(stage.hosts)) hosts.set(host.name, host.address);
  const lab = await startLab({ dir: labDirOf(project), keepDir: false, hosts: [...hosts].map(([name, address]) => ({ name, address })) });
  const stop = async () => {
    try {
      await lab.stop();
    } finally {
      await dropDatabases(databases);
    }
  };
  try {
    const template = loadHaproxyTemplate(project);
    const haproxies: Record<string, LabHaproxy> = {};
    for (const stage of pipeline) {
      for (const host of Object.values(stage.hosts)) {
        if (host.key !== lab.keyFile || host.knownHosts !== lab.knownHosts) {
          throw new Error(`${stage.file}: ssh key ${host.key} and knownHosts ${host.knownHosts} must be the lab's ${lab.keyFile} and ${lab.knownHosts}`);
        }
      }
      const lbs = Object.values(stage.loadBalancers);
      if (lbs.length !== 1) throw new Error(`${stage.file}: the project lab runs one HAProxy per stage, and this profile names ${lbs.length}`);
      const lb = lbs[0]!;
      haproxies[stage.name] = await lab.startHaproxy(stage.name, (paths) => {
        if (paths.socket !== lb.socket || paths.mapFile !== lb.mapFile) {
          throw new Error(`${stage.file}: loadBalancers.${lb.name} must use the lab's socket ${paths.socket} and map file ${paths.mapFile}`);
        }
        return renderHaproxyConfig(stage, lb, { template });
      });
    }
    const stages = Object.fromEntries(pipeline.map((s) => [s.name, s]));
    return {
      lab, stages, haproxies, stop,
      url(name, service) {
        const stage = stages[name];
        if (!stage) throw new Error(`no stage ${name} in the lab`);
        const svc = service ? stage.services[service] : Object.values(stage.services)[0];
        if (!svc) throw new Error(`no service ${service ?? ''} in stage ${name}`);
        return `http://${Object.values(stage.loadBalancers)[0]!.address}:${svc.listen}/`;
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface SampleAppAnswer { version: string; release: string; slot: string }

/**
 * What the sample app behind `url` says it runs (GET /). A fresh connection each time (agent: false):
 * a kept-alive one may have been closed by HAProxy since. Rejects unless the answer is 200.
 */
export function sampleApp(url: string): Promise<SampleAppAnswer> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        try {
          resolve(JSON.parse(body) as SampleAppAnswer);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', reject);
  });
}
