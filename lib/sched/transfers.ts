// Transfers in flight. Each is tied to the hold whose blocks it reads or writes, so a request
// that lets go of its KV (preempted by recompute, aborted) keeps its blocks owned until the
// copies are done, and may give blocks back when it completes (a moved layer's old blocks,
// staging sets, landing blocks). The part of the scheduler that issued a transfer can ask to
// hear about its completion.
//
// A transfer may also pin the table blocks it reads (a prefix save): a move that completes
// meanwhile and gives its old blocks back leaves the pinned ones owned, and they return when
// the last transfer pinning them is done.
import type { KVCacheManager } from '../kv/kv-cache-manager.js';
import type { Transfer, TierName, TransferKind } from '../contract/plan.js';
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
  /** Table blocks it reads that must stay owned until it completes. */
  pins: ReleaseOnDone[];
  /** Called on completion; `dropped` when the request let go of this KV meanwhile. */
  onDone?: (at: number, error: string | undefined, dropped: boolean) => void;
}

/** Kinds the request need not see land before it computes again: offloads (what reads their
 *  destination waits for them with `after`) and prefix saves (nothing reads what they write). */
const NO_WAIT: ReadonlySet<TransferKind> = new Set<TransferKind>(['offload', 'prefix-save']);
/** The only kinds a result may report failed: a prefix read that missed or did not verify,
 *  the load after it, and a save the store refused. */
const MAY_FAIL: ReadonlySet<TransferKind> = new Set<TransferKind>(['prefix-read', 'prefix-load', 'prefix-save']);

export class TransferTable {
  private nextId = 1;
  private readonly recs = new Map<number, TransferRec>();
  /** Pins per `${tier}:${block}`, and blocks whose release waits for their pins. */
  private readonly pinned = new Map<string, number>();
  private readonly deferred = new Map<string, { seq: string; layer: number; tier: TierName; block: number }>();
  /** Blocks whose release waited for a pin (for tests). */
  deferredReleases = 0;

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

  /** Adds a transfer of `s`'s current hold (or `extra.hold`, one it let go of) to the plan. */
  issue(b: StepBuilder, s: SeqState, t: Omit<Transfer, 'id' | 'seq'>, extra: { release?: ReleaseOnDone[]; pins?: ReleaseOnDone[]; onDone?: TransferRec['onDone']; hold?: Hold } = {}): TransferRec {
    const hold = extra.hold ?? s.hold;
    if (!hold) throw new Error(`TransferTable.issue: ${s.id} holds no KV`);
    const tr = { id: this.nextId++, seq: s.id, ...t } as Transfer;
    if (tr.after && tr.after.length === 0) delete (tr as { after?: unknown }).after;
    hold.inflight++;
    if (!NO_WAIT.has(tr.kind)) hold.waits++;
    const rec: TransferRec = { t: tr, seq: s, hold, release: extra.release ?? [], pins: extra.pins ?? [], onDone: extra.onDone };
    for (const p of rec.pins) for (const blk of p.blocks) this.pinned.set(`${p.tier}:${blk}`, (this.pinned.get(`${p.tier}:${blk}`) ?? 0) + 1);
    this.recs.set(tr.id, rec);
    b.plan.transfers.push(tr);
    return rec;
  }

  /** The executor reported `id` done: gives back its blocks, and its hold's once dropped and
   *  idle, then tells whoever issued it. */
  complete(id: number, at: number, error: string | undefined): TransferRec {
    const rec = this.recs.get(id);
    if (!rec) throw new Error(`Scheduler.onResult: transfer ${id} is not in flight`);
    if (error !== undefined && !MAY_FAIL.has(rec.t.kind)) {
      throw new Error(`Scheduler.onResult: transfer ${id} (${rec.t.kind} of ${rec.seq.id}) failed: ${error}; only prefix-store transfers may fail`);
    }
    this.recs.delete(id);
    for (const r of rec.release) this.release(rec.seq.id, r.layer, r.tier, r.blocks);
    for (const p of rec.pins) {
      for (const blk of p.blocks) {
        const key = `${p.tier}:${blk}`;
        const n = this.pinned.get(key)! - 1;
        if (n > 0) {
          this.pinned.set(key, n);
          continue;
        }
        this.pinned.delete(key);
        const d = this.deferred.get(key);
        if (d) {
          this.deferred.delete(key);
          this.kv.release(d.seq, d.layer, d.tier, [d.block]);
        }
      }
    }
    const h = rec.hold;
    h.inflight--;
    if (!NO_WAIT.has(rec.t.kind)) h.waits--;
    this.releaseIfIdle(h);
    rec.onDone?.(at, error, h.dropped);
    return rec;
  }

  /** Blocks given back once the transfers pinning them are done. */
  deferredBlocks(): IterableIterator<{ seq: string; tier: TierName; block: number }> {
    return this.deferred.values();
  }

  /** A dropped hold with nothing in flight and no saves owed gives its blocks back. */
  releaseIfIdle(h: Hold): void {
    if (h.dropped && h.inflight === 0 && h.owed === 0) this.kv.releaseAll(h.kv);
  }

  // Blocks a pinning transfer still reads wait for it.
  private release(seq: string, layer: number, tier: TierName, blocks: readonly number[]): void {
    if (this.pinned.size === 0) {
      this.kv.release(seq, layer, tier, blocks);
      return;
    }
    const now: number[] = [];
    for (const blk of blocks) {
      const key = `${tier}:${blk}`;
      if (this.pinned.has(key)) {
        this.deferred.set(key, { seq, layer, tier, block: blk });
        this.deferredReleases++;
      } else now.push(blk);
    }
    this.kv.release(seq, layer, tier, now);
  }
}
