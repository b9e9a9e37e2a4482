// Preemption: when a decode needs a block the device does not have, the newest running
// request that holds device blocks gives them up, as vLLM does.
//   - 'recompute': its KV is dropped and it rejoins the front of the queue to prefill its
//     prompt and output so far again.
//   - 'swap': its device layers are copied to the host ('swap-out' on d2h), the device blocks
//     are freed when those copies complete, and it resumes by 'swap-in' copies on h2d: it
//     keeps its KV and never re-prefills. A victim the host cannot hold, one with transfers in
//     flight, one still in its prefill or a prefix (Cake) request is recomputed instead.
import type { SeqEvent } from '../contract/events.js';
import type { SeqKv } from '../kv/kv-cache-manager.js';
import type { SchedCore } from './core.js';
import type { SeqState } from './request-state.js';
import type { StepBuilder } from './step-builder.js';

export type PreemptionMode = 'recompute' | 'swap';

export interface PreemptionHooks {
  /** A request whose prefill goes through the prefix coordinator (never swapped). */
  isPrefixRequest(s: SeqState): boolean;
  event(e: SeqEvent): void;
}

export class Preemption {
  /** Device blocks that in-flight swap-outs free when they complete: a decode short of
   *  blocks that these cover waits for them instead of preempting one more request. */
  private swapFreeing = 0;

  constructor(
    private readonly core: SchedCore,
    readonly mode: PreemptionMode,
    private readonly hooks: PreemptionHooks,
  ) {}

  /** Slots for `s`'s next token; preempts while the device is short. False when `s` itself
   *  was preempted or waits for swap-outs to land. */
  growForDecode(s: SeqState, b: StepBuilder): boolean {
    const kvm = this.core.kv;
    const kv = s.hold!.kv;
    while (!kvm.allocateSlots(kv, s.computed + 1)) {
      // Each further victim would free nothing now either: wait for the swap-outs instead of
      // swapping everyone out.
      if (this.swapFreeing > 0) {
        const need = kvm.growthNeeded(kv, s.computed + 1);
        if (need.host <= kvm.host.numFree && need.device <= kvm.deviceFree + this.swapFreeing) return false;
      }
      const victim = this.victim(s);
      this.preempt(victim, b);
      if (victim === s) return false;
    }
    return true;
  }

  /** The newest running request whose preemption frees device blocks (`s` itself when it is
   *  that one, or when no other is). Under LayerKV the newest admissions often have every
   *  layer on the host while they wait for promotion: recomputing one of them frees no device
   *  block and throws away a whole prefill. */
  victim(s: SeqState): SeqState {
    const running = this.core.running;
    for (let i = running.length - 1; i >= 0; i--) {
      const r = running[i];
      if (r.hold && this.deviceBlocksOf(r.hold.kv) > 0) return r;
    }
    return s;
  }

  preempt(s: SeqState, b: StepBuilder): void {
    const core = this.core;
    core.stats.preemptions++;
    const i = core.running.indexOf(s);
    if (i >= 0) core.running.splice(i, 1);
    b.remove(s.id);
    b.plan.preempted.push(s.id);
    this.hooks.event({ seq: s.id, kind: 'preempted', at: NaN });
    if (this.mode === 'swap' && this.swapOut(s, b)) {
      s.status = 'swapped';
    } else {
      core.dropKv(s);
      s.status = 'waiting';
      s.target = s.req.promptLen + s.generated;
      s.computed = 0;
    }
    s.hostLayers = [];
    core.queue.pushFront(s);
  }

  private swapOut(s: SeqState, b: StepBuilder): boolean {
    const core = this.core;
    const h = s.hold;
    if (!h || this.hooks.isPrefixRequest(s) || s.status !== 'decoding' || h.inflight > 0) return false;
    const dev = this.deviceBlocksOf(h.kv);
    if (!core.kv.host.canAllocate(dev)) return false;
    for (let l = 0; l < core.numLayers; l++) {
      if (h.kv.tiers[l] !== 'device') continue;
      const mv = core.kv.moveLayer(h.kv, l, 'host')!;
      const bytes = mv.source.length * core.blockBytes;
      core.stats.swapOuts++;
      core.stats.offloadedBytes += bytes;
      core.transfers.issue(
        b,
        s,
        { kind: 'swap-out', channel: 'd2h', bytes, moves: [{ layer: l, from: 'device', to: 'host', pairs: mv.pairs }] },
        {
          release: [{ layer: l, tier: mv.from, blocks: mv.source }],
          onDone: () => {
            this.swapFreeing -= mv.source.length;
          },
        },
      );
    }
    this.swapFreeing += dev;
    return true;
  }

  /**
   * Resumes a swapped-out request: device blocks for every layer now, 'swap-in' copies on
   * h2d, host blocks freed as each completes; it decodes once they land. Under LayerKV too,
   * rather than resuming with host layers through promotion or streaming: it had all these
   * layers' device blocks when it was preempted, and one path keeps a resumed decode off PCIe
   * every step. False while its swap-out is still in flight or the device lacks room above
   * the watermark and the blocks promised to running requests.
   */
  swapIn(s: SeqState, b: StepBuilder, reserved: number): boolean {
    const core = this.core;
    const h = s.hold!;
    if (h.inflight > 0) return false;
    let need = 0;
    for (let l = 0; l < core.numLayers; l++) if (h.kv.tiers[l] === 'host') need += h.kv.tables[l].length;
    if (need > core.kv.deviceAdmissible - reserved) return false;
    for (let l = 0; l < core.numLayers; l++) {
      if (h.kv.tiers[l] !== 'host') continue;
      const mv = core.kv.moveLayer(h.kv, l, 'device')!;
      const bytes = mv.source.length * core.blockBytes;
      core.stats.swapIns++;
      core.stats.loadedBytes += bytes;
      core.transfers.issue(b, s, { kind: 'swap-in', channel: 'h2d', bytes, moves: [{ layer: l, from: 'host', to: 'device', pairs: mv.pairs }] }, { release: [{ layer: l, tier: mv.from, blocks: mv.source }] });
    }
    s.status = 'decoding';
    s.hostLayers = [];
    core.running.push(s);
    return true;
  }

  private deviceBlocksOf(kv: SeqKv): number {
    let n = 0;
    for (let l = 0; l < this.core.numLayers; l++) if (kv.tiers[l] === 'device') n += kv.tables[l].length;
    return n;
  }
}
