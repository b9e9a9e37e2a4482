// Where a request's KV lives while it runs: the part of a policy that chooses tiers at
// admission and moves layers between them. The scheduler calls the same hooks whatever the
// policy; the baseline keeps every layer on the device and its hooks do nothing.
import type { TierName } from '../../contract/plan.js';
import type { SeqState } from '../request-state.js';
import type { StepBuilder } from '../step-builder.js';

export interface LayoutQuery {
  /** Tokens the prefill will hold (prompt, plus output so far when recomputing). */
  tokens: number;
  /** Blocks one layer of it needs. */
  blocksPerLayer: number;
  /** Device blocks free for an admission's tables (watermark and promised blocks already
   *  taken off). */
  deviceFree: number;
  /** Free device blocks of the staging reserve, which only staging sets may take. */
  stagingFree: number;
  hostFree: number;
  numLayers: number;
  /** Token budget per step, for the prefill-time estimate. */
  chunkTokens: number;
}

export interface Layout {
  tiers: TierName[];
  /** Staging sets of blocksPerLayer device blocks the prefill computes its host layers on. */
  stagingSets: number;
}

/** What a decoding request with host layers does this step. */
export type HostDecode = 'now' | 'later' | 'stream';

export interface PlacementPolicy {
  readonly name: 'baseline' | 'layerkv';
  /** Tiers of a new prefill's layers, or null when it cannot be admitted now. */
  layout(q: LayoutQuery): Layout | null;
  /** Once at the start of every step. */
  beginStep(b: StepBuilder): void;
  /** A decoding request with host layers: 'now' when its layers come back in time for this
   *  step's decode, 'later' when they come back on their own, 'stream' when they stay on the
   *  host (a candidate for streamDecodes). */
  decodeHostLayers(s: SeqState, b: StepBuilder): HostDecode;
  /** Decodes host layers from staging this step where that hides behind the step. */
  streamDecodes(candidates: readonly SeqState[], b: StepBuilder, grow: (s: SeqState) => boolean): void;
  /** Device blocks running requests will need for their host layers and growth: admissions
   *  leave them free, so new prefills cannot starve decodes. */
  reserved(running: readonly SeqState[]): number;
  /** Plans a prefill chunk of `s` (with its offloads and reloads). */
  addPrefill(s: SeqState, tokens: number, b: StepBuilder): void;
  /** Whether admitting `s` with `hostCount` layers on the host keeps its TPOT SLO. */
  admitsWithHostLayers(s: SeqState, blocksPerLayer: number, hostCount: number, deviceAvail: number): boolean;
  /** The request no longer computes with host layers (dropped): forget its staging state. */
  forget(s: SeqState): void;
  /** A step ran (for measured step times). */
  observeStep(decoded: boolean, seconds: number): void;
  /** A violation of the policy's own rule in a layout, or null (invariant checks). */
  checkLayout(s: SeqState, tiers: readonly TierName[]): string | null;
}
