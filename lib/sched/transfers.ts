// Transfers in flight. Each is tied to the hold whose blocks it reads or writes, so a request
// that lets go of its KV (preempted by recompute, aborted) keeps its blocks owned until the
// copies are done, and may give blocks back when it completes (a moved layer's old blocks,
// staging sets, landing blocks). The part of the scheduler that issued a transfer can ask to
// hear about its completion.
import type { KVCacheManager } from '../kv/kv-cache-manager.js';
import type { Transfer, TierName } from '../contract/plan.js';
import type { Hold, SeqState } from './request-state.js';
import type { StepBuilder } from './step-builder.js';

export interface ReleaseOnDone {
  layer: number;
  tier: TierName;
  blocks: number[];
}

export interface TransferRec {
  readonly t: Transfer;
  readonly seq: SeqState;
  readonly hold: Hold;
  /** Blocks given back when the transfer completes (or fails). */
  release: ReleaseOnDone[];
  /** Called on completion; `dropped` when the request let go of this KV meanwhile. */
  onDone?: (at: number, error: string | undefined, dropped: boolean) => void;
}

export class TransferTable {
  private nextId = 1;
  private readonly recs = new Map<number, TransferRec>();

  constructor(private readonly kv: KVCacheManager) {}

  get size(): number {
    return this.recs.size;
  }

  values(): IterableIterator<TransferRec> {
    return this.recs.values();
  }

  has(id: number): boolean {
    return this.recs.has(id);
  }

  get(id: number): TransferRec | undefined {
    return this.recs.get(id);
  }

  /** Adds a transfer of `s`'s current hold to the step's plan. */
  issue(b: StepBuilder, s: SeqState, t: Omit<Transfer, 'id' | 'seq'>, extra: { release?: ReleaseOnDone[]; onDone?: TransferRec['onDone'] } = {}): TransferRec {
    const hold = s.hold;
    if (!hold) throw new Error(`TransferTable.issue: ${s.id} holds no KV`);
    const tr = { id: this.nextId++, seq: s.id, ...t } as Transfer;
    if (tr.after && tr.after.length === 0) delete (tr as { after?: unknown }).after;
    hold.inflight++;
    if (tr.kind !== 'offload') hold.waits++;
    const rec: TransferRec = { t: tr, seq: s, hold, release: extra.release ?? [], onDone: extra.onDone };
    this.recs.set(tr.id, rec);
    b.plan.transfers.push(tr);
    return rec;
  }

  /** The executor reported `id` done: gives back its blocks, and its hold's once dropped and
   *  idle, then tells whoever issued it. */
  complete(id: number, at: number, error: string | undefined): TransferRec {
    const rec = this.recs.get(id);
    if (!rec) throw new Error(`Scheduler.onResult: transfer ${id} is not in flight`);
    this.recs.delete(id);
    for (const r of rec.release) this.kv.release(rec.seq.id, r.layer, r.tier, r.blocks);
    const h = rec.hold;
    h.inflight--;
    if (rec.t.kind !== 'offload') h.waits--;
    if (h.dropped && h.inflight === 0) this.kv.releaseAll(h.kv);
    rec.onDone?.(at, error, h.dropped);
    return rec;
  }
}
