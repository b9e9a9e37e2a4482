// Prefix saves: the full prompt chunks a prefill computed go to the prefix store, so a later
// request (on this server, or on another one sharing the store) loads them instead.
//
// A chunk is saved once its KV is final: every position of the chunk computed, in every
// layer. The save is one 'prefix-save' transfer on the d2h channel: every layer's blocks of
// the chunk are copied into host landing blocks (device layers across PCIe, host layers within
// the host), and the executor writes the landed chunk to the store; the landing blocks come
// back when the write is done. Nothing waits for a save: no layer gates on it, and the
// request's own steps go on (it does not count in Hold.waits).
//
// The blocks a save reads keep their values until it is done:
//   - the request never writes a full chunk's blocks again (chunks are whole blocks);
//   - a copy still writing one of them (an offload, a swap-out) is in the save's `after`;
//   - a request that lets go of its KV (finished, preempted, aborted) keeps its blocks while a
//     save is in flight, and while one is owed but not yet issued (Hold.owed);
//   - a move that gives its old blocks back when it lands (promotion, swap) finds them pinned
//     by the save, and they return when the save is done (TransferTable).
// Saving is best effort: without host room for the landing blocks, or with maxInFlight saves
// already in flight, a running request's chunk waits for a later step, and a request that
// let go of its KV gives its owed saves up (counted as skipped).
//
// Which chunks: those at or past the stored prefix (the store lacks them), and stored chunks
// whose load failed (the store dropped the bad copy; the chunk was computed instead).
import type { ChunkLanding, TierName } from '../../contract/plan.js';
import type { SchedCore } from '../core.js';
import type { Hold, SeqState } from '../request-state.js';
import type { StepBuilder } from '../step-builder.js';
import type { ReleaseOnDone } from '../transfers.js';

interface SaveCursor {
  /** The next chunk whose KV completion has not been looked at. */
  next: number;
  /** Stored chunks whose load failed: saved again once computed. */
  resave: Set<number>;
}

interface OwedSave {
  s: SeqState;
  hold: Hold;
  chunk: number;
}

export interface SaverOptions {
  /** Prefix saves in flight at most (each holds one chunk's landing blocks). Default 4. */
  maxInFlight?: number;
}

export class PrefixSaver {
  private readonly core: SchedCore;
  private readonly maxInFlight: number;
  private readonly cursors = new Map<SeqState, SaveCursor>();
  private owed: OwedSave[] = [];
  private inFlight = 0;

  constructor(core: SchedCore, opts: SaverOptions = {}) {
    this.core = core;
    const m = opts.maxInFlight ?? 4;
    if (!Number.isInteger(m) || m < 1) throw new RangeError(`Scheduler: maxSavesInFlight must be an integer >= 1, got ${m}`);
    this.maxInFlight = m;
  }

  private cursor(s: SeqState): SaveCursor | undefined {
    const p = s.req.prefix;
    if (!p || p.chunkHashes.length === 0) return undefined;
    let c = this.cursors.get(s);
    if (!c) this.cursors.set(s, (c = { next: 0, resave: new Set() }));
    return c;
  }

  /** A stored chunk of `s` failed to load and is computed instead: save it again. */
  loadFailed(s: SeqState, chunk: number): void {
    this.cursor(s)?.resave.add(chunk);
  }

  /** `s` computed up to s.computed (called after each step's compute, before the request may
   *  finish and let go of its KV): chunks now complete are owed a save. */
  afterCompute(s: SeqState): void {
    const c = this.cursor(s);
    if (!c || !s.hold) return;
    const p = s.req.prefix!;
    const C = p.chunkTokens;
    const full = Math.min(p.chunkHashes.length, Math.floor(Math.min(s.computed, s.req.promptLen) / C));
    for (; c.next < full; c.next++) {
      if (c.next < p.storedChunks && !c.resave.has(c.next)) continue;
      c.resave.delete(c.next);
      s.hold.owed++;
      this.owed.push({ s, hold: s.hold, chunk: c.next });
    }
  }

  /** Holds with saves owed (their blocks stay owned for them). */
  *owingHolds(): IterableIterator<Hold> {
    for (const o of this.owed) yield o.hold;
  }

  /** `s` ended: nothing more of it will complete (owed saves stay until issued). */
  forget(s: SeqState): void {
    this.cursors.delete(s);
  }

  /** Issues owed saves while there is room; gives up those whose request let go of its KV. */
  issue(b: StepBuilder): void {
    if (this.owed.length === 0) return;
    const core = this.core;
    const keep: OwedSave[] = [];
    for (const o of this.owed) {
      const blocks = core.numLayers * (o.s.req.prefix!.chunkTokens / core.blockSize);
      if (this.inFlight < this.maxInFlight && core.kv.host.canAllocate(blocks)) {
        o.hold.owed--;
        this.save(o, b);
        continue;
      }
      if (!o.hold.dropped) {
        keep.push(o);
        continue;
      }
      o.hold.owed--;
      core.stats.prefixSavesSkipped++;
      core.transfers.releaseIfIdle(o.hold);
    }
    this.owed = keep;
  }

  private save(o: OwedSave, b: StepBuilder): void {
    const core = this.core;
    const { s, hold, chunk } = o;
    const p = s.req.prefix!;
    const nb = p.chunkTokens / core.blockSize;
    const kv = hold.kv;
    const dest: ChunkLanding[] = [];
    const moves = [];
    const release: ReleaseOnDone[] = [];
    const pins: ReleaseOnDone[] = [];
    const reads = new Set<string>();
    for (let l = 0; l < core.numLayers; l++) {
      const tier: TierName = kv.tiers[l];
      const src = kv.tables[l].slice(chunk * nb, (chunk + 1) * nb);
      const landing = core.kv.allocLanding(s.id, l, nb)!;
      dest.push({ layer: l, tier: 'host', blocks: landing });
      const pairs = new Int32Array(2 * nb);
      for (let j = 0; j < nb; j++) {
        pairs[2 * j] = src[j];
        pairs[2 * j + 1] = landing[j];
        reads.add(`${tier}:${src[j]}`);
      }
      moves.push({ layer: l, from: tier, to: 'host' as const, pairs });
      release.push({ layer: l, tier: 'host', blocks: landing });
      pins.push({ layer: l, tier, blocks: src });
    }
    // Copies of this hold still writing a block the save reads (an offload, a swap-out).
    const after: number[] = [];
    for (const r of core.transfers.values()) {
      if (r.hold !== hold) continue;
      if (r.t.moves.some((m) => m.pairs.some((blk, i) => i % 2 === 1 && reads.has(`${m.to}:${blk}`)))) after.push(r.t.id);
    }
    const bytes = core.numLayers * nb * core.blockBytes;
    this.inFlight++;
    core.stats.prefixSaves++;
    core.stats.savedBytes += bytes;
    core.transfers.issue(b, s, { kind: 'prefix-save', channel: 'd2h', bytes, moves, after, chunk: { index: chunk, hash: p.chunkHashes[chunk], dest } }, { hold, release, pins, onDone: () => this.inFlight-- });
  }
}
