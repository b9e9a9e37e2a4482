// vLLM's placement: every layer's blocks for the whole prompt on the device at admission.
import type { TierName } from '../../contract/plan.js';
import type { SchedCore } from '../core.js';
import type { SeqState } from '../request-state.js';
import type { StepBuilder } from '../step-builder.js';
import type { HostDecode, Layout, LayoutQuery, PlacementPolicy } from './placement.js';

export class BaselinePlacement implements PlacementPolicy {
  readonly name = 'baseline' as const;
  constructor(private readonly core: SchedCore) {}

  layout(q: LayoutQuery): Layout | null {
    if (q.blocksPerLayer * q.numLayers > q.deviceFree) return null;
    return { tiers: new Array<TierName>(q.numLayers).fill('device'), stagingSets: 0 };
  }

  beginStep(_b: StepBuilder): void {}

  decodeHostLayers(s: SeqState): HostDecode {
    throw new Error(`BaselinePlacement: ${s.id} has host layers, which this policy never places`);
  }

  streamDecodes(): void {}

  reserved(): number {
    return 0;
  }

  addPrefill(s: SeqState, tokens: number, b: StepBuilder): void {
    b.add(this.core.prefillItem(s, tokens));
  }

  admitsWithHostLayers(): boolean {
    return true;
  }

  forget(): void {}

  observeStep(): void {}

  checkLayout(_s: SeqState, tiers: readonly TierName[]): string | null {
    return tiers.every((t) => t === 'device') ? null : 'baseline placed a layer on the host';
  }
}
