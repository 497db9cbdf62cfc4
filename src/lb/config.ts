/*
 * HAProxy configuration for one load balancer of a stage, rendered from lb-templates/haproxy.cfg.
 * Traffic is switched with a map: each service's frontend picks its backend with
 * `use_backend %[str(<service>),map(<mapFile>,<service>_a)]`, so one `set map` moves all of a
 * service's traffic at once, requests in flight finish where they started, and rewriting the map file
 * on disk makes the choice survive a reload or restart (docs/decisions/0003-switch-with-a-map.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../package-dir.js';
import type { LoadBalancer, Project, SlotName, Stage } from '../config/model.js';
import { renderTemplate, type View } from './template.js';
import { backendName } from '../config/slot.js';
import { instancePort, instancesOf } from '../config/instances.js';

export const TEMPLATE_FILE = join('lb-templates', 'haproxy.cfg');
/** The template shipped with updateserver, used when the project has none of its own. */
const BUILT_IN = join(PACKAGE_DIR, TEMPLATE_FILE);

export interface HaproxyTemplate { file: string; text: string }

export function loadHaproxyTemplate(project?: Project): HaproxyTemplate {
  const own = project ? join(project.dir, TEMPLATE_FILE) : undefined;
  const file = own && existsSync(own) ? own : BUILT_IN;
  return { file, text: readFileSync(file, 'utf8') };
}

export interface HaproxyConfigOptions {
  /** Extra lines for the global section (pidfile, daemon, ...). */
  globalLines?: readonly string[];
  template?: HaproxyTemplate;
}

export function haproxyView(stage: Stage, lb: LoadBalancer, globalLines: readonly string[] = []): View {
  return {
    stage: stage.name,
    loadBalancer: lb.name,
    socket: lb.socket,
    mapFile: lb.mapFile,
    globalLines: globalLines.map((line) => ({ line })),
    // Services without a frontend (workers, servers reached directly by their clients) are never in HAProxy.
    services: Object.values(stage.services).filter((service) => service.listen !== undefined).map((service) => ({
      service: service.name,
      bind: `${lb.address}:${service.listen}`,
      healthPath: service.health.path,
      // Sections the template shows for one mode only: a list of one item, or none.
      http: service.mode === 'http' ? [{}] : [],
      tcp: service.mode === 'tcp' ? [{}] : [],
      backends: Object.values(service.slots).map((slot) => ({
        backend: slot.backend,
        // One server line per instance: <host> for the first, <host>-<n> for the others.
        servers: instancesOf(service).flatMap((i) => {
          const host = Object.hasOwn(stage.hosts, i.host) ? stage.hosts[i.host] : undefined;
          return host ? [{ server: i.server, address: host.address, port: instancePort(service, slot.name, i.instance) }] : [];
        }),
      })),
    })),
  };
}

export function renderHaproxyConfig(stage: Stage, lb: LoadBalancer, options: HaproxyConfigOptions = {}): string {
  const template = options.template ?? loadHaproxyTemplate();
  return renderTemplate(template.text, haproxyView(stage, lb, options.globalLines), template.file);
}

/** Map file content: the live backend of each service, plus the maintenance and read-only switches that are on. */
export function renderMap(live: Readonly<Record<string, SlotName>>, flags: Readonly<Record<string, string>> = {}): string {
  return [
    ...Object.entries(live).map(([service, slot]) => `${service} ${backendName(service, slot)}\n`),
    ...Object.entries(flags).map(([key, value]) => `${key} ${value}\n`),
  ].join('');
}
