/*
 * HAProxy configuration for one load balancer of a stage. Traffic is switched with a map: each
 * service's frontend picks its backend with `use_backend %[str(<service>),map(<mapFile>,<service>_a)]`,
 * so one `set map` moves all of a service's traffic at once, requests in flight finish on the backend
 * they started on, and rewriting the map file on disk makes the choice survive a reload or restart.
 * (docs/decisions/0003-switch-with-a-map.md)
 */
import type { LoadBalancer, SlotName, Stage } from '../config/model.js';

export interface HaproxyConfigOptions {
  /** Extra lines for the global section (pidfile, daemon, ...), e.g. from the lab or a template. */
  globalLines?: readonly string[];
}

export function renderHaproxyConfig(stage: Stage, lb: LoadBalancer, options: HaproxyConfigOptions = {}): string {
  const out: string[] = [
    `# Rendered by updateserver for stage ${stage.name}, load balancer ${lb.name}. Do not edit: re-render instead.`,
    'global',
    `    stats socket ${lb.socket} mode 600 level admin`,
    ...(options.globalLines ?? []).map((l) => `    ${l}`),
    '',
    'defaults',
    '    mode http',
    '    timeout connect 2s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    timeout http-keep-alive 5s',
    // A request that hits a server which has just gone away is retried on another one instead of failing.
    '    option redispatch',
    '    retries 3',
    '    retry-on conn-failure empty-response response-timeout',
    '    default-server inter 1s fall 2 rise 1',
  ];
  for (const service of Object.values(stage.services)) {
    out.push(
      '',
      `frontend ${service.name}`,
      `    bind ${lb.address}:${service.listen}`,
      `    use_backend %[str(${service.name}),map(${lb.mapFile},${service.slots.a.backend})]`,
    );
    for (const slot of Object.values(service.slots)) {
      out.push('', `backend ${slot.backend}`, `    option httpchk GET ${service.health.path}`);
      for (const hostName of service.hosts) {
        const host = stage.hosts[hostName];
        if (host === undefined) continue;
        out.push(`    server ${hostName} ${host.address}:${slot.port} check`);
      }
    }
  }
  return `${out.join('\n')}\n`;
}

/** Map file content: one line per service naming the backend that takes its traffic. */
export function renderMap(live: Readonly<Record<string, SlotName>>): string {
  return Object.entries(live).map(([service, slot]) => `${service} ${service}_${slot}\n`).join('');
}
