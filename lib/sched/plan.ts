// The contract between a scheduler and whoever runs its plans. A scheduler turns its state
// into a StepPlan; an Executor (the simulator's virtual-clock executor, or the real engine
// on native ops) runs it and reports a StepResult. Neither side knows which the other is.
import type { Request } from '../workload/request.js';

export type SeqId = string;
export type TierName = 'device' | 'host';
/** Independent I/O resources: PCIe in each direction, and the prefix store's read path. */
export type Channel = 'h2d' | 'd2h' | 'storage';

/** Tokens one sequence computes in this step. */
export interface ComputeItem {
  seq: SeqId;
  phase: 'prefill' | 'decode';
  /** Tokens computed this step (1 for a decode). */
  tokens: number;
  /** Tokens already in the KV cache before this step, which the new tokens attend to. */
  cachedBefore: number;
  /** A token is emitted at the end of the step (the last prompt chunk, or a decode). */
  emitsToken: boolean;
}

/** A block move between a tier pair for one layer, for executors that move real bytes. */
export interface BlockMove {
  layer: number;
  from: TierName;
  to: TierName;
  /** [n][2] (srcBlock, dstBlock) pairs. */
  pairs: Int32Array;
}

export interface Transfer {
  /** Unique per scheduler run. */
  id: number;
  seq: SeqId;
  kind: 'offload' | 'load' | 'prefix-load' | 'swap-out' | 'swap-in';
  channel: Channel;
  bytes: number;
  /** Layers whose KV moves (every layer for a prefix chunk). */
  layers: number[];
  /** Prefix-store chunk index, for prefix loads. */
  chunk?: number;
  /** Start no earlier than the end of this layer's compute in this step (LayerKV: an
   *  offload of layer l overlaps the compute of layers after l). */
  afterLayer?: number;
  /** This step's compute of this layer waits for the transfer (LayerKV: a decode load
   *  arrives ahead of its layer's use). */
  beforeLayer?: number;
  /** Block-level detail for a real executor; the simulator needs only bytes. */
  moves?: BlockMove[];
}

/** Per-layer block ids a sequence got or gave back this step (real executors use them to
 *  build block tables; the simulator ignores them). */
export interface BlockChange {
  seq: SeqId;
  layer: number;
  tier: TierName;
  blocks: number[];
}

export interface StepPlan {
  step: number;
  compute: ComputeItem[];
  /** Transfers issued this step. They run on their channel in issue order, concurrently
   *  with compute, and may finish in a later step. */
  transfers: Transfer[];
  allocated: BlockChange[];
  freed: BlockChange[];
  /** Sequences preempted this step (recompute: their KV is dropped). */
  preempted: SeqId[];
}

export interface StepResult {
  /** Clock at which the step's compute started and ended (end = start for no compute). */
  start: number;
  end: number;
  /** Every transfer that completed since the last result, with its completion time. */
  transfersDone: { id: number; at: number }[];
}

export interface Executor {
  /** Current clock, seconds. */
  readonly now: number;
  /** Runs one step's compute and issues its transfers. */
  execute(plan: StepPlan): Promise<StepResult>;
  /** Nothing to compute: move the clock to the next transfer completion or `until`,
   *  whichever comes first, and report completions. */
  idle(until: number): Promise<StepResult>;
  /** Transfers issued and not yet complete. */
  readonly pendingTransfers: number;
}

/** Something a scheduler reports about a request; metrics are computed from these. */
export interface SeqEvent {
  seq: SeqId;
  kind: 'first-token' | 'token' | 'finished' | 'preempted' | 'rejected';
  at: number;
  /** Why a request was rejected (names the field and the limit). */
  reason?: string;
}

export interface Scheduler {
  readonly name: string;
  /** A request arrives (now >= its arrival). */
  add(req: Request, now: number): void;
  /** The next step's plan. An empty plan (no compute, no transfers) means "wait". */
  schedule(now: number): StepPlan;
  /** The executor's report for `plan`; returns what happened to requests. */
  onResult(plan: StepPlan, result: StepResult): SeqEvent[];
  /** Any request still waiting, running or transferring. */
  hasWork(): boolean;
}
