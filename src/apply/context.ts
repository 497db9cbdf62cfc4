import type { SlotName, Stage } from '../config/model.js';
import type { Balancer } from '../lb/balancer.js';
import type { Logger } from '../log.js';
import type { CheckReport } from '../health/checks.js';
import type { Journal } from '../state/journal.js';
import type { DataRecord, StageState } from '../state/store.js';
import type { LeftBehind } from '../promote/left-writes.js';
import type { RolloutControl } from '../state/rollout-control.js';
import type { SnapshotResult } from '../data/snapshot.js';
import type { ExecTunnel } from '../transport/tunnel.js';
import type { TransportPool } from '../transport/pool.js';

/** One step of a plan as it begins, ends or fails: what progress displays listen to. */
export interface StepEvent { phase: string; target: string; title: string; state: 'begin' | 'end' | 'fail'; error?: string }

export interface ApplyContext {
  stage: Stage;
  pool: TransportPool;
  balancers: Record<string, Balancer>;
  logger: Logger;
  /** Things the operator should know that did not fail the run. */
  warnings: string[];
  /** Bytes rsync sent per host, from its own statistics. */
  transfers?: Array<{ host: string; bytesSent: number }>;
  /** Every health check run, passed or failed. */
  reports: CheckReport[];
  /** Each step recorded before and after it runs, when the run keeps a journal. */
  journal?: Journal;
  /** Per service: what the data step left in the idle slot's database (the release record's data version). */
  data?: Record<string, DataRecord>;
  /** Every database snapshot made (data-copy), in order. */
  snapshots?: SnapshotResult[];
  /**
   * What a pull step needs beyond the plan: the source hosts' manifests read in the read phase (by
   * hash), and rsync's way to the previous stage's hosts over the run's connections.
   */
  pull?: { manifests: ReadonlyMap<string, string>; tunnel: () => Promise<ExecTunnel> };
  /** rsync's way to the hosts over the run's own SSH connections. */
  tunnel?: ExecTunnel;
  /** Told of every step as it begins, ends or fails (the terminal's progress display). */
  onStep?: (event: StepEvent) => void;
  /** The output of each exec that reports (`output`: the files left in a slot), for the verb to read after the run. */
  outputs?: Array<{ kind: 'files-left'; service: string; slot: SlotName; host: string; stdout: string }>;
  /** The run's id as notifications name it; hooks receive it as UPDATESERVER_RUN_ID. */
  runId?: string;
  /** What the report step (report-changes) needs beyond the plan: where the report goes, the recorded write counters, the clock. */
  report?: { stateDir: string; recorded: StageState | undefined; now: () => Date };
  /** What the report step found: the slot traffic left and what users wrote to it. */
  left?: LeftBehind;
  /** Where a rollout records its progress and finds the answers to its pauses (the stage's state backend). */
  rollouts?: RolloutControl;
}
