// Per-(sequence, layer) block tables over two tiers, and the record of every change for the
// step's plan. vLLM keeps one table per sequence for all layers; here each layer has its own
// table in its own tier, because LayerKV keeps some layers of a sequence on the device while
// others live on the host. Every layer of a sequence holds the same number of tokens (a
// layer's KV exists for every token computed), so the token count is per sequence and the
// block count per layer follows from it.
//
// Besides the tables, a sequence may hold:
//   - staging sets: device blocks a host layer computes on during a step (LayerKV), kept for
//     as long as the sequence computes with host layers and reused layer after layer;
//   - landing blocks: host blocks a prefix-store read lands in before its copy to the device.
// The scheduler decides when blocks are given back (a copy may still be reading them); this
// class only hands them out, takes them back and writes down what happened.
import type { FreedBlocks, SeqId, TableUpdate, TierName } from '../contract/plan.js';
import { BlockPool } from './block-pool.js';

export interface KVCacheOptions {
  numLayers: number;
  /** Tokens per layer-block. */
  blockSize: number;
  deviceBlocks: number;
  hostBlocks: number;
  /** Device fraction admissions leave free (see BlockPool). */
  watermark?: number;
  /** Record table updates, staged, landing and freed blocks for the plan (a real executor and
   *  the ledger need them; a long simulation can skip the garbage). */
  recordTables?: boolean;
  /** Device blocks kept for staging sets: tables never take the last of them (0). */
  stagingReserve?: number;
}

export interface SeqKv {
  readonly seq: SeqId;
  /** Tier of each layer's blocks. */
  readonly tiers: TierName[];
  /** Block ids per layer, in token order. */
  readonly tables: number[][];
  /** Tokens the tables have slots for. */
  tokens: number;
  /** Staging sets (device blocks), each long enough for one layer's working set. */
  staging: number[][];
}

/** The copy a layer move needs: pairs[2i] (old block) -> pairs[2i + 1] (new block). */
export interface LayerMove {
  pairs: Int32Array;
  /** The old blocks: still owned until released, since the copy reads them. */
  source: number[];
  from: TierName;
}

export class KVCacheManager {
  readonly numLayers: number;
  readonly blockSize: number;
  readonly device: BlockPool;
  readonly host: BlockPool;
  readonly recordTables: boolean;
  readonly stagingReserve: number;
  /** Staging blocks handed out now. */
  private stagingHeld = 0;
  private tables: TableUpdate[] = [];
  private freed: FreedBlocks[] = [];
  private staged: FreedBlocks[] = [];
  private landing: FreedBlocks[] = [];
  private readonly seqs = new Map<SeqId, SeqKv>();

  constructor(o: KVCacheOptions) {
    if (!Number.isInteger(o.numLayers) || o.numLayers < 1) throw new RangeError(`KVCacheManager: numLayers must be a positive integer, got ${o.numLayers}`);
    if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new RangeError(`KVCacheManager: blockSize must be a positive integer, got ${o.blockSize}`);
    this.numLayers = o.numLayers;
    this.blockSize = o.blockSize;
    this.device = new BlockPool(o.deviceBlocks, { watermark: o.watermark ?? 0, name: 'device' });
    this.host = new BlockPool(o.hostBlocks, { name: 'host' });
    this.recordTables = o.recordTables ?? true;
    const r = o.stagingReserve ?? 0;
    if (!(Number.isInteger(r) && r >= 0 && r <= o.deviceBlocks)) throw new RangeError(`KVCacheManager: stagingReserve must be an integer in [0, deviceBlocks ${o.deviceBlocks}], got ${r}`);
    this.stagingReserve = r;
  }

  pool(tier: TierName): BlockPool {
    return tier === 'device' ? this.device : this.host;
  }

  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  get(seq: SeqId): SeqKv | undefined {
    return this.seqs.get(seq);
  }

  get numSeqs(): number {
    return this.seqs.size;
  }

  /** Free device blocks only staging may take: what is left of the staging reserve. */
  get stagingFree(): number {
    return Math.min(this.device.numFree, Math.max(0, this.stagingReserve - this.stagingHeld));
  }

  /** Free device blocks tables may take. */
  get deviceFree(): number {
    return this.device.numFree - this.stagingFree;
  }

  /** Device blocks free for an admission: tables' share above the watermark. */
  get deviceAdmissible(): number {
    return Math.max(0, this.deviceFree - this.device.watermarkBlocks);
  }

  /** Whether tables can take n more device blocks (with `admission`, above the watermark). */
  canAllocateDevice(n: number, admission = false): boolean {
    return n === 0 || n <= this.deviceFree - (admission ? this.device.watermarkBlocks : 0);
  }

  /** Registers a sequence with empty tables, layer l in tiers[l]. */
  create(seq: SeqId, tiers: readonly TierName[]): SeqKv {
    if (this.seqs.has(seq)) throw new Error(`KVCacheManager.create: sequence ${seq} already has block tables`);
    if (tiers.length !== this.numLayers) throw new RangeError(`KVCacheManager.create: tiers must have ${this.numLayers} entries, got ${tiers.length}`);
    const kv: SeqKv = { seq, tiers: [...tiers], tables: tiers.map(() => []), tokens: 0, staging: [] };
    this.seqs.set(seq, kv);
    return kv;
  }

  /** Blocks per tier that giving `kv` slots for `tokens` tokens would take. */
  growthNeeded(kv: SeqKv, tokens: number): { device: number; host: number } {
    const add = Math.max(0, this.blocksFor(tokens) - this.blocksFor(kv.tokens));
    let dev = 0;
    for (let l = 0; l < this.numLayers; l++) if (kv.tiers[l] === 'device') dev++;
    return { device: add * dev, host: add * (this.numLayers - dev) };
  }

  /** Gives every layer's table slots for `tokens` tokens in its current tier; all or nothing
   *  (vLLM's allocate_slots). With `admission`, the device watermark must stay free. */
  allocateSlots(kv: SeqKv, tokens: number, admission = false): boolean {
    if (tokens <= kv.tokens) return true;
    // Most calls (a decode's next token) stay within the last block.
    if (kv.tokens > 0 && this.blocksFor(tokens) === this.blocksFor(kv.tokens)) {
      kv.tokens = tokens;
      return true;
    }
    const need = this.growthNeeded(kv, tokens);
    if (!this.canAllocateDevice(need.device, admission) || !this.host.canAllocate(need.host)) return false;
    const add = this.blocksFor(tokens) - this.blocksFor(kv.tokens);
    if (add > 0) {
      for (let l = 0; l < this.numLayers; l++) {
        const tier = kv.tiers[l];
        const table = kv.tables[l];
        const from = table.length;
        this.pool(tier).allocMany(add, table);
        if (this.recordTables) this.tables.push({ kind: 'append', seq: kv.seq, layer: l, tier, blocks: table.slice(from) });
      }
    }
    kv.tokens = tokens;
    return true;
  }

  /** Moves one layer's table to the other tier: allocates there and returns the copy pairs
   *  and the old blocks, which stay owned until `release` (the copy reads them). Null when
   *  the other tier lacks the blocks. */
  moveLayer(kv: SeqKv, layer: number, to: TierName): LayerMove | null {
    const from = kv.tiers[layer];
    if (from === to) throw new Error(`KVCacheManager.moveLayer: layer ${layer} of ${kv.seq} is already on ${to}`);
    const src = kv.tables[layer];
    if (to === 'device' ? !this.canAllocateDevice(src.length) : !this.host.canAllocate(src.length)) return null;
    const dst = this.pool(to).allocMany(src.length);
    const pairs = new Int32Array(src.length * 2);
    for (let i = 0; i < src.length; i++) {
      pairs[2 * i] = src[i];
      pairs[2 * i + 1] = dst[i];
    }
    kv.tables[layer] = dst;
    kv.tiers[layer] = to;
    if (this.recordTables) this.tables.push({ kind: 'move', seq: kv.seq, layer, tier: to, blocks: dst.slice() });
    return { pairs, source: src, from };
  }

  /** Extra device blocks that `sets` staging sets of `blocks` blocks each would take. */
  stagingNeeded(kv: SeqKv, sets: number, blocks: number): number {
    let n = 0;
    for (let s = 0; s < sets; s++) n += Math.max(0, blocks - (kv.staging[s]?.length ?? 0));
    return n;
  }

  /** Makes `kv` hold at least `sets` staging sets of at least `blocks` device blocks each,
   *  from the staging reserve first; all or nothing. New blocks are recorded as staged. */
  allocStaging(kv: SeqKv, sets: number, blocks: number): boolean {
    const need = this.stagingNeeded(kv, sets, blocks);
    if (!this.device.canAllocate(need)) return false;
    this.stagingHeld += need;
    for (let s = 0; s < sets; s++) {
      const set = (kv.staging[s] ??= []);
      const from = set.length;
      if (blocks <= from) continue;
      this.device.allocMany(blocks - from, set);
      if (this.recordTables) this.staged.push({ tier: 'device', seq: kv.seq, layer: -1, blocks: set.slice(from) });
    }
    return true;
  }

  /** Takes the staging sets away from `kv` (its blocks are the caller's to release). */
  takeStaging(kv: SeqKv): number[] {
    const out = kv.staging.flat();
    kv.staging = [];
    return out;
  }

  /** `n` host blocks for a prefix read of one layer to land in, or null. */
  allocLanding(seq: SeqId, layer: number, n: number): number[] | null {
    if (!this.host.canAllocate(n)) return null;
    const blocks = this.host.allocMany(n);
    if (this.recordTables) this.landing.push({ tier: 'host', seq, layer, blocks: blocks.slice() });
    return blocks;
  }

  /** Gives back blocks held apart from any table (a moved layer's old blocks, staging and
   *  landing blocks, a dropped sequence's blocks once the copies reading them are done). The
   *  record gets a copy: callers may empty `blocks` afterwards. `layer` is -1 for staging. */
  release(seq: SeqId, layer: number, tier: TierName, blocks: readonly number[]): void {
    if (blocks.length === 0) return;
    this.pool(tier).freeMany(blocks);
    if (layer === -1 && tier === 'device') this.stagingHeld -= blocks.length;
    if (this.recordTables) this.freed.push({ tier, seq, layer, blocks: blocks.slice() });
  }

  /** Forgets a sequence's tables (recorded as a 'drop') and returns them: the caller gives
   *  the blocks back now, or once the copies touching them are done. */
  drop(seq: SeqId): SeqKv | undefined {
    const kv = this.seqs.get(seq);
    if (!kv) return undefined;
    this.seqs.delete(seq);
    if (this.recordTables) this.tables.push({ kind: 'drop', seq });
    return kv;
  }

  /** Gives back every block a dropped sequence's tables and staging hold. */
  releaseAll(kv: SeqKv): void {
    for (let l = 0; l < this.numLayers; l++) {
      this.release(kv.seq, l, kv.tiers[l], kv.tables[l]);
      kv.tables[l].length = 0;
    }
    if (kv.staging.length > 0) this.release(kv.seq, -1, 'device', this.takeStaging(kv));
  }

  /** Whether anything was recorded since the last drain (a plan should carry it). */
  get hasRecords(): boolean {
    return this.tables.length > 0 || this.freed.length > 0 || this.staged.length > 0 || this.landing.length > 0;
  }

  /** Everything recorded since the last drain, for the step's plan. */
  drain(): { tables: TableUpdate[]; freed: FreedBlocks[]; staged: FreedBlocks[]; landing: FreedBlocks[] } {
    const out = { tables: this.tables, freed: this.freed, staged: this.staged, landing: this.landing };
    this.tables = [];
    this.freed = [];
    this.staged = [];
    this.landing = [];
    return out;
  }
}
