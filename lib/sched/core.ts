// What the scheduler's parts share: the KV cache, the cost model, the running set and the
// queue, the transfers in flight and the counters. The scheduler (scheduler.ts) owns this
// state and hands it to each part; parts change it only through these fields and calls.
import type { CostModel } from '../cost/cost-model.js';
import type { ComputeItem } from '../contract/plan.js';
import type { KVCacheManager } from '../kv/kv-cache-manager.js';
import type { RequestQueue } from './request-queue.js';
import type { SeqState } from './request-state.js';
import type { TransferTable } from './transfers.js';

/** Counters for reports. */
export interface SchedulerStats {
  preemptions: number;
  swapOuts: number;
  swapIns: number;
  /** LayerKV: host layers moved to the device for good. */
  promotions: number;
  /** LayerKV: host layers reloaded into staging for one streamed decode step. */
  streamedLoads: number;
  /** LayerKV: host layers' new KV copied from staging to the host. */
  offloads: number;
  /** LayerKV: host layers' earlier KV reloaded into staging for a later prefill chunk. */
  reloads: number;
  prefixLoads: number;
  /** Prefix loads that failed (missed or did not verify); their chunks were computed. */
  prefixLoadFailures: number;
  /** Prefix saves issued, and owed saves given up (no host room before the KV went). */
  prefixSaves: number;
  prefixSavesSkipped: number;
  rejected: number;
  aborted: number;
  loadedTokens: number;
  computedPrefixTokens: number;
  /** Bytes per transfer kind group. */
  offloadedBytes: number;
  loadedBytes: number;
  savedBytes: number;
}

export function emptyStats(): SchedulerStats {
  return {
    preemptions: 0,
    swapOuts: 0,
    swapIns: 0,
    promotions: 0,
    streamedLoads: 0,
    offloads: 0,
    reloads: 0,
    prefixLoads: 0,
    prefixLoadFailures: 0,
    prefixSaves: 0,
    prefixSavesSkipped: 0,
    rejected: 0,
    aborted: 0,
    loadedTokens: 0,
    computedPrefixTokens: 0,
    offloadedBytes: 0,
    loadedBytes: 0,
    savedBytes: 0,
  };
}

export interface SchedCore {
  readonly numLayers: number;
  readonly blockSize: number;
  /** Bytes of one layer-block (K and V of blockSize tokens of one layer). */
  readonly blockBytes: number;
  readonly maxBatchedTokens: number;
  readonly kv: KVCacheManager;
  readonly cost: CostModel;
  readonly transfers: TransferTable;
  /** Admission order: the last one is the newest. */
  readonly running: SeqState[];
  readonly queue: RequestQueue;
  readonly stats: SchedulerStats;
  /** End of the last step that ran compute (-Infinity before any): a step starting
   *  cost.wake.afterIdleSeconds or more after it pays the cost model's wake cost. */
  readonly lastComputeEnd: number;
  /** The request lets go of its KV: the blocks return now, or once its transfers are done. */
  dropKv(s: SeqState): void;
  /** A decode of `s`'s next token. */
  decodeItem(s: SeqState): ComputeItem;
  /** A prefill chunk of `s` from its computed tokens on. */
  prefillItem(s: SeqState, tokens: number, cachedBefore?: number): ComputeItem;
}
