/*
 * Rules of `hooks:` and `notify:` across fields (issue 19). `critical` means "a failure switches traffic
 * back", which only makes sense while the old slot still runs and still has its traffic to take back:
 * after the switch and before the post checks (after-switch). Before the switch every failure already
 * stops the run; from the drain on, and in after-rollback/failed/finished, a failure is a warning.
 */
import type { ProfileData } from './schema.js';
import type { CrossIssue } from './cross-checks.js';

type HooksData = ProfileData['hooks'];

function checkHooks(hooks: HooksData, at: string): CrossIssue[] {
  return Object.entries(hooks ?? {}).flatMap(([point, list]) => (list ?? []).flatMap((h, i) =>
    h.critical && point !== 'after-switch'
      ? [{ path: `${at}.${point}.${i}.critical`, message: `critical applies to after-switch hooks only (a failure there switches traffic back); a ${point} hook ${point.startsWith('before-') || point === 'after-copy' || point === 'after-start' ? 'always stops the run when it fails' : 'failing is a warning'}` }]
      : []));
}

export function checkHooksAndNotify(data: ProfileData): CrossIssue[] {
  const notify = data.notify;
  return [
    ...checkHooks(data.hooks, 'hooks'),
    ...Object.entries(data.services).flatMap(([name, s]) => checkHooks(s.hooks, `services.${name}.hooks`)),
    ...(notify && notify.webhook === undefined && notify.email === undefined ? [{ path: 'notify', message: 'expected a webhook, an email, or both' }] : []),
  ];
}
