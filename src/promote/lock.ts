import type { Logger } from '../log.js';
import { acquireWaiting, describeHolder, type HeldLock, type LockStore } from '../state/lock.js';
import type { StateBackend } from '../state/backend.js';

/** Takes the stage's lock for a run that changes things; a dry run takes none (it only reports the holder). */
export async function takeLock(store: LockStore, stage: string, options: { dryRun?: boolean; waitMs?: number; logger: Logger; message?: string }): Promise<HeldLock | undefined> {
  if (options.dryRun) {
    const holder = await store.read(stage);
    if (holder) options.logger.warn(`stage ${stage} is locked by ${describeHolder(holder)}: a real run would wait or be refused`);
    return undefined;
  }
  return acquireWaiting(store, stage, {
    heartbeat: true, message: (options.message ?? `updateserver ${process.argv.slice(2).join(' ')}`).slice(0, 200), waitMs: options.waitMs ?? 0,
    onStale: (h, why) => options.logger.warn(`took over the lock of ${stage} from ${describeHolder(h)}: ${why}`),
    onWait: (h) => options.logger.info(`waiting for the lock of ${stage}, held by ${describeHolder(h)}`),
  });
}

/**
 * takeLock for a command that opened the state store just before: when the lock is refused, the store
 * is closed (nothing else was opened yet) and the refusal goes on, never hidden by a failing close.
 */
export async function lockStage(state: StateBackend, stage: string, options: Parameters<typeof takeLock>[2]): Promise<HeldLock | undefined> {
  try {
    return await takeLock(state.locks, stage, options);
  } catch (err) {
    await state.close().catch(() => {});
    throw err;
  }
}
