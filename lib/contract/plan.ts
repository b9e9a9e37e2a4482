// The contract between a scheduler and whoever runs its plans. A scheduler turns its state
// into a StepPlan, plain data; an Executor (the simulator's virtual-clock executor, or the
// engine on native ops) runs it and reports a StepResult. Neither knows which the other is.
//
// Memory. Block ids are dense ints per tier ('device', 'host'); a layer-block holds K and V
// of blockSize tokens of one layer of one sequence. Every (sequence, layer) has a block table
// in one tier, in token order: block i holds positions [i * blockSize, (i + 1) * blockSize).
// An executor keeps its own copy of the tables by applying `tables` updates in order; the
// plan never repeats a table whole. Attention always reads device blocks: a layer whose table
// is on the host computes on staging blocks (ComputeItem.staging).
//
// Ordering within a step. The step's compute runs layer 0 to L-1. A transfer is ready at the
// step's start, or once layer `afterLayer` of this step's compute has ended, and once every
// transfer in `after` has completed. Its stage is the last layer it follows, directly or
// through `after` within the plan (-1: none). Each channel is an in-order queue: it takes the
// plan's transfers by stage, in issue order within a stage, and starts each when the one
// before it is done and it is ready. Layer `beforeLayer` of this step waits for it to
// complete (beforeLayer is above the stage). Transfers without beforeLayer may complete in a
// later step; what they write is read only after a result reports them done.

export type SeqId = string;
export type TierName = 'device' | 'host';
/** Independent I/O resources: PCIe in each direction, and the prefix store's read path. */
export type Channel = 'h2d' | 'd2h' | 'storage';

/** Tokens one sequence computes in this step. */
export interface ComputeItem {
  seq: SeqId;
  phase: 'prefill' | 'decode';
  /** Positions computed: [cachedBefore, cachedBefore + tokens). KV of every position below
   *  cachedBefore is in place on the device by the time each layer runs; this step appends the
   *  new positions' KV into the blocks that cover them. 1 token for a decode. */
  cachedBefore: number;
  tokens: number;
  /** Ids of those positions, when the request carries promptTokens: positions below
   *  promptLen are prompt tokens, the rest the request's own earlier output (a recompute after
   *  preemption, or a decode's input: the last token sampled). Absent in the simulator. */
  tokenIds?: Int32Array;
  /** The step samples a token for this sequence (its last prompt chunk, or a decode). */
  emitsToken: boolean;
  /** Layers this item computes on staging blocks instead of its own table (LayerKV: the
   *  layer's table is on the host). Each lists the device blocks that hold positions
   *  [0, cachedBefore + tokens) of that layer during this step, in token order. */
  staging?: StagedLayer[];
}

export interface StagedLayer {
  layer: number;
  blocks: readonly number[];
}

/** Block copies of one layer between tiers: pairs[2i] in `from` is copied whole to
 *  pairs[2i + 1] in `to`. */
export interface BlockMove {
  layer: number;
  from: TierName;
  to: TierName;
  /** [n][2] (srcBlock, dstBlock). */
  pairs: Int32Array;
}

/** Blocks of one layer that a prefix-store read fills, in token order within the chunk. */
export interface ChunkLanding {
  layer: number;
  tier: TierName;
  blocks: readonly number[];
}

export type TransferKind =
  /** LayerKV: a host layer's new KV, from its staging blocks to its host table. */
  | 'offload'
  /** LayerKV: a host layer's earlier KV, from its host table into staging, for a later
   *  prefill chunk or a streamed decode. */
  | 'reload'
  /** LayerKV promotion: a host layer moves to the device for good. */
  | 'promote'
  /** Preemption by swap: a device layer to the host, and back on resume. */
  | 'swap-out'
  | 'swap-in'
  /** Cake: a stored chunk read from the prefix store into host landing blocks. */
  | 'prefix-read'
  /** Cake: the landed chunk from host landing blocks into the request's device blocks. */
  | 'prefix-load'
  /** A full chunk a prefill computed, copied from the request's blocks (every layer, either
   *  tier) into host landing blocks, then written to the prefix store. Nothing waits for it. */
  | 'prefix-save';

export interface Transfer {
  /** Unique per scheduler run. */
  id: number;
  seq: SeqId;
  kind: TransferKind;
  channel: Channel;
  /** Bytes moved: whole layer-blocks. */
  bytes: number;
  /** The block copies (every kind but prefix-read). */
  moves: BlockMove[];
  /** prefix-read: the chunk read, and the host blocks it lands in, per layer. prefix-save:
   *  the chunk saved, and the landing blocks its moves fill and the store write reads. */
  chunk?: { index: number; hash: string; dest: ChunkLanding[] };
  /** Ready once this step's compute of this layer ends. */
  afterLayer?: number;
  /** This step's compute of this layer waits for this transfer. Greater than afterLayer. */
  beforeLayer?: number;
  /** Ready once these transfers (of this plan or earlier ones) complete. A transfer that
   *  waits for one that failed fails too. */
  after?: readonly number[];
}

/** A change to a (sequence, layer)'s block table. */
export type TableUpdate =
  /** New blocks at the end of the table, in the layer's tier. */
  | { kind: 'append'; seq: SeqId; layer: number; tier: TierName; blocks: readonly number[] }
  /** The table now lives in `tier` with these blocks, one for one and in the same order as
   *  before; a transfer in this plan copies the old blocks into them, and the old blocks stay
   *  owned until a plan frees them. */
  | { kind: 'move'; seq: SeqId; layer: number; tier: TierName; blocks: readonly number[] }
  /** The sequence has no tables any more (finished, aborted or preempted by recompute). */
  | { kind: 'drop'; seq: SeqId };

/** Blocks of one sequence in one tier: handed out (staged, landing) or given back (freed).
 *  Freed blocks are read or written by nothing from this plan on, until a later plan hands
 *  them out again. `layer` is the table's layer, or -1 for staging blocks (which serve
 *  several layers in turn). */
export interface FreedBlocks {
  tier: TierName;
  blocks: readonly number[];
  seq: SeqId;
  layer: number;
}

export interface StepPlan {
  step: number;
  compute: ComputeItem[];
  /** Transfers issued this step, in issue order (each channel serves its transfers in order
   *  of readiness, ties in issue order). */
  transfers: Transfer[];
  /** Table changes, applied in order before anything else in the step. */
  tables: TableUpdate[];
  /** Staging blocks first handed out this step (device tier), per sequence and layer; freed
   *  by a later plan once the transfers reading them have completed. */
  staged: FreedBlocks[];
  /** Prefix-read landing blocks first handed out this step (host tier). */
  landing: FreedBlocks[];
  freed: FreedBlocks[];
  /** Sequences preempted this step: by recompute their KV is dropped, by swap it moves to
   *  the host (their 'swap-out' transfers). */
  preempted: SeqId[];
  /** Sequences that ended since the last plan (finished or aborted): per-sequence state an
   *  executor keeps (sampler, cached ids) can go. */
  ended: SeqId[];
}

/** The token sampled for one emitting compute item. */
export interface SampledToken {
  seq: SeqId;
  token: number;
}

/** What the simulator reports as a sampled token: it runs no model. */
export const PLACEHOLDER_TOKEN = -1;

export interface TransferDone {
  id: number;
  /** Completion time, seconds. */
  at: number;
  /** Set when the transfer failed (a prefix read that missed or did not verify, the load
   *  after it, a save the store refused): nothing it would have written may be read. Other
   *  kinds never fail. */
  error?: string;
}

export interface StepResult {
  /** Clock at which the step's compute started and ended (end = start for no compute). */
  start: number;
  end: number;
  /** Every transfer that completed since the last result, with its completion time. */
  transfersDone: TransferDone[];
  /** One entry per compute item with emitsToken, in plan order. */
  sampled: SampledToken[];
}

export interface Executor {
  /** Current clock, seconds. */
  readonly now: number;
  /** Runs one step's compute and issues its transfers. */
  execute(plan: StepPlan): Promise<StepResult>;
  /** Nothing to compute: move the clock to the next transfer completion or `until`,
   *  whichever comes first (a live executor also returns when `wake` settles), and report
   *  completions. */
  idle(until: number, wake?: Promise<unknown>): Promise<StepResult>;
  /** Transfers issued and not yet complete. */
  readonly pendingTransfers: number;
}
