import type { ProfileData } from './schema.js';

export interface CrossIssue { path: string; message: string }

/**
 * Rules that span several fields: references between sections, and slots that would collide on a
 * host. The schema checks each field alone; this checks that they make one workable stage.
 */
export function checkStage(stage: string, data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  if (data.from === undefined && data.source === undefined) {
    issues.push({ path: 'from', message: 'expected "from: <previous stage>" or, for the first stage, "source: { path: ... }"' });
  }
  if (data.from !== undefined && data.source !== undefined) {
    issues.push({ path: 'source', message: 'a stage takes its code either from the previous stage (from:) or from a source, not both' });
  }
  if (data.from === stage) issues.push({ path: 'from', message: `a stage cannot promote from itself ("${stage}")` });

  for (const [lbName, lb] of Object.entries(data.loadBalancers)) {
    if (lb.host !== undefined && !(lb.host in data.hosts)) {
      issues.push({ path: `loadBalancers.${lbName}.host`, message: `unknown host "${lb.host}" (hosts: ${Object.keys(data.hosts).join(', ')})` });
    }
  }

  // Per host: every port and every directory belongs to exactly one slot of one service.
  const ports = new Map<string, string>();
  const dirs = new Map<string, string>();
  for (const [serviceName, service] of Object.entries(data.services)) {
    const seenHosts = new Set<string>();
    service.hosts.forEach((h, i) => {
      if (!(h in data.hosts)) {
        issues.push({ path: `services.${serviceName}.hosts.${i}`, message: `unknown host "${h}" (hosts: ${Object.keys(data.hosts).join(', ')})` });
      }
      if (seenHosts.has(h)) issues.push({ path: `services.${serviceName}.hosts.${i}`, message: `host "${h}" is listed twice` });
      seenHosts.add(h);
    });
    const root = service.root.replace(/\/+$/, '');
    for (const slot of ['a', 'b'] as const) {
      const s = service.slots[slot];
      const dir = (s.dir ?? `${root}/${slot}`).replace(/\/+$/, '');
      const where = `services.${serviceName}.slots.${slot}`;
      if (dir === root || `${root}/releases` === dir || `${root}/run` === dir) {
        issues.push({ path: `${where}.dir`, message: `"${dir}" is reserved for the service's releases and run files; use e.g. ${root}/${slot}` });
      }
      for (const h of new Set(service.hosts)) {
        const portKey = `${h}:${s.port}`;
        const portOwner = ports.get(portKey);
        if (portOwner !== undefined) issues.push({ path: `${where}.port`, message: `port ${s.port} on host "${h}" is already used by ${portOwner}` });
        else ports.set(portKey, where);
        const dirKey = `${h}:${dir}`;
        const dirOwner = dirs.get(dirKey);
        if (dirOwner !== undefined) issues.push({ path: `${where}.dir`, message: `directory ${dir} on host "${h}" is already used by ${dirOwner}` });
        else dirs.set(dirKey, where);
      }
    }
  }
  const lbNames = Object.keys(data.loadBalancers);
  if (lbNames.length === 0 && Object.keys(data.services).length > 0) {
    issues.push({ path: 'loadBalancers', message: 'expected at least one load balancer: traffic is switched there' });
  }
  return issues;
}
