/*
 * What the console shows, read the same way the CLI reads it: every stage of the project's profiles in
 * pipeline order (each after the stage it promotes from), and for each service the live slot, each
 * slot's release and data version, the lock holder and the last run, from the stage's own state
 * backend (the local state directory or the team's PostgreSQL store). Between adjacent stages, what a
 * promotion would move: the earlier stage's live release where it differs from the later stage's.
 * Nothing here connects to a host: the recorded state is what the page shows (status asks the hosts).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadProfile } from '../config/load.js';
import type { Project, SlotName, Stage } from '../config/model.js';
import { SLOTS } from '../config/slot.js';
import { describeHolder } from '../state/lock.js';
import { withState } from '../state/backend.js';
import type { HistoryEntry } from '../state/store.js';
import type { RolloutProgress } from '../state/rollout-control.js';

export interface SlotView { slot: SlotName; release: string | undefined; data: string | undefined; bad: string | undefined }
export interface ServiceView { service: string; live: SlotName | undefined; slots: SlotView[]; liveRelease: string | undefined;
  /** Set when the previous stage's live release differs: what promoting this stage would bring. */
  incoming: string | undefined }
export interface StageView { stage: string; from: string | undefined; services: ServiceView[]; lock: string | undefined; lastRun: HistoryEntry | undefined; hosts: number;
  /** The rollout of the run that holds the lock, where it stands (paused: waiting for continue or abort). */
  rollout: Pick<RolloutProgress, 'service' | 'step' | 'steps' | 'weight' | 'state' | 'figures'> | undefined }

/** The stages of the project's profiles, each after the one it promotes from (alphabetical among equals). */
export async function stagesInOrder(project: Project): Promise<Stage[]> {
  const names = (await readdir(join(project.dir, 'profiles'))).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length)).sort();
  const stages = await Promise.all(names.map((n) => loadProfile(project, n)));
  const out: Stage[] = [];
  const placed = new Set<string>();
  // Roots first, then whatever promotes from a stage already placed; a stage whose source is missing goes last.
  while (out.length < stages.length) {
    const next = stages.filter((s) => !placed.has(s.name) && (s.from === undefined || placed.has(s.from)));
    const batch = next.length > 0 ? next : stages.filter((s) => !placed.has(s.name));
    for (const s of batch) { out.push(s); placed.add(s.name); }
  }
  return out;
}

export async function readPipeline(project: Project, stages: readonly Stage[]): Promise<StageView[]> {
  const views = await Promise.all(stages.map((stage) => withState(project, stage, async (state) => {
    const [recorded, holder, history, progress] = await Promise.all([state.store.read(stage.name), state.locks.read(stage.name), state.store.history(stage.name, 1), state.rollouts.readProgress(stage.name)]);
    // A progress record outlives its run; only the lock holder's own rollout is going on.
    const rollout = holder && progress && progress.pid === holder.pid
      ? { service: progress.service, step: progress.step, steps: progress.steps, weight: progress.weight, state: progress.state, ...(progress.figures ? { figures: progress.figures } : {}) } : undefined;
    const services: ServiceView[] = Object.keys(stage.services).map((name) => {
      const s = recorded?.services[name];
      return {
        service: name, live: s?.live, liveRelease: s ? s.releases[s.live] : undefined, incoming: undefined,
        slots: SLOTS.map((slot) => {
          const release = s?.releases[slot];
          const data = s?.data?.[slot];
          return { slot, release, data: data ? `${data.database} v${data.version ?? 'none'}` : undefined, bad: release !== undefined ? s?.bad?.[release] : undefined };
        }),
      };
    });
    return { stage: stage.name, from: stage.from, services, lock: holder ? describeHolder(holder) : undefined, lastRun: history.at(-1), hosts: Object.keys(stage.hosts).length, rollout } satisfies StageView;
  })));
  const byName = new Map(views.map((v) => [v.stage, v]));
  for (const v of views) {
    const from = v.from === undefined ? undefined : byName.get(v.from);
    for (const s of v.services) {
      const upstream = from?.services.find((x) => x.service === s.service)?.liveRelease;
      if (upstream !== undefined && upstream !== s.liveRelease) s.incoming = upstream;
    }
  }
  return views;
}
