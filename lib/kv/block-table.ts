// Per-(sequence, layer) block tables over two tiers. vLLM keeps one table per sequence for
// all layers; here each layer has its own table and its own tier, because LayerKV keeps
// some layers of a sequence on the device while others live on the host. Every layer of a
// sequence holds the same number of tokens (a layer's KV exists for every token computed),
// so the token count is per sequence and the block count per layer follows from it.
import type { BlockChange, SeqId, TierName } from '../sched/plan.js';
import { BlockAllocator } from './allocator.js';

export interface KvCacheOptions {
  numLayers: number;
  /** Tokens per layer-block. */
  blockSize: number;
  deviceBlocks: number;
  hostBlocks: number;
  /** Device fraction admissions leave free (see BlockAllocator). */
  watermark?: number;
  /** Record BlockChange lists for the plan (a real executor needs them; the simulator can
   *  skip the garbage). */
  recordChanges?: boolean;
}

export interface SeqKv {
  readonly seq: SeqId;
  /** Tier of each layer's blocks. */
  readonly tiers: TierName[];
  /** Block ids per layer, in token order. */
  readonly tables: number[][];
  /** Tokens the tables have slots for. */
  tokens: number;
}

export class KvCacheManager {
  readonly numLayers: number;
  readonly blockSize: number;
  readonly device: BlockAllocator;
  readonly host: BlockAllocator;
  readonly recordChanges: boolean;
  /** Changes since the last drain, for the step's plan. */
  allocated: BlockChange[] = [];
  freed: BlockChange[] = [];
  private readonly seqs = new Map<SeqId, SeqKv>();

  constructor(o: KvCacheOptions) {
    if (!Number.isInteger(o.numLayers) || o.numLayers < 1) throw new RangeError(`KvCacheManager: numLayers must be a positive integer, got ${o.numLayers}`);
    if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new RangeError(`KvCacheManager: blockSize must be a positive integer, got ${o.blockSize}`);
    this.numLayers = o.numLayers;
    this.blockSize = o.blockSize;
    this.device = new BlockAllocator(o.deviceBlocks, { watermark: o.watermark ?? 0, name: 'device' });
    this.host = new BlockAllocator(o.hostBlocks, { name: 'host' });
    this.recordChanges = o.recordChanges ?? true;
  }

  pool(tier: TierName): BlockAllocator {
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

  *entries(): IterableIterator<SeqKv> {
    yield* this.seqs.values();
  }

  /** Registers a sequence with empty tables, layer l in tiers[l]. */
  create(seq: SeqId, tiers: readonly TierName[]): SeqKv {
    if (this.seqs.has(seq)) throw new Error(`KvCacheManager.create: sequence ${seq} already has block tables`);
    if (tiers.length !== this.numLayers) throw new RangeError(`KvCacheManager.create: tiers must have ${this.numLayers} entries, got ${tiers.length}`);
    const kv: SeqKv = { seq, tiers: [...tiers], tables: tiers.map(() => []), tokens: 0 };
    this.seqs.set(seq, kv);
    return kv;
  }

  /** Blocks per tier that growing `seq` to `tokens` tokens would take. */
  growthNeeded(kv: SeqKv, tokens: number): { device: number; host: number } {
    const add = Math.max(0, this.blocksFor(tokens) - this.blocksFor(kv.tokens));
    let dev = 0;
    for (let l = 0; l < this.numLayers; l++) if (kv.tiers[l] === 'device') dev++;
    return { device: add * dev, host: add * (this.numLayers - dev) };
  }

  /** Grows every layer's table to hold `tokens` tokens in its current tier; all or nothing.
   *  With `admission`, the device watermark must stay free. */
  grow(kv: SeqKv, tokens: number, admission = false): boolean {
    if (tokens <= kv.tokens) return true;
    const need = this.growthNeeded(kv, tokens);
    if (!this.device.canAllocate(need.device, admission) || !this.host.canAllocate(need.host)) return false;
    const add = this.blocksFor(tokens) - this.blocksFor(kv.tokens);
    if (add > 0) {
      for (let l = 0; l < this.numLayers; l++) {
        const tier = kv.tiers[l];
        const table = kv.tables[l];
        const from = table.length;
        this.pool(tier).allocMany(add, table);
        if (this.recordChanges) this.allocated.push({ seq: kv.seq, layer: l, tier, blocks: table.slice(from) });
      }
    }
    kv.tokens = tokens;
    return true;
  }

  /** Moves one layer's blocks to the other tier: allocates there and returns the copy pairs
   *  and the source blocks. The source blocks stay owned until `release` — the copy reads
   *  them, so they must not be reused before it completes. */
  moveLayer(kv: SeqKv, layer: number, to: TierName): { pairs: Int32Array; source: number[]; from: TierName } | null {
    const from = kv.tiers[layer];
    if (from === to) throw new Error(`KvCacheManager.moveLayer: layer ${layer} of ${kv.seq} is already on ${to}`);
    const src = kv.tables[layer];
    if (!this.pool(to).canAllocate(src.length)) return null;
    const dst = this.pool(to).allocMany(src.length);
    const pairs = new Int32Array(src.length * 2);
    for (let i = 0; i < src.length; i++) {
      pairs[2 * i] = src[i];
      pairs[2 * i + 1] = dst[i];
    }
    kv.tables[layer] = dst;
    kv.tiers[layer] = to;
    if (this.recordChanges) this.allocated.push({ seq: kv.seq, layer, tier: to, blocks: dst.slice() });
    return { pairs, source: src, from };
  }

  /** Returns blocks held apart from any table (a moved layer's source, a dropped sequence's
   *  blocks whose transfer is still in flight). The change list gets a copy: callers may
   *  empty `blocks` afterwards (the scheduler clears a dropped holding's tables), and the
   *  executor must still see which blocks were freed. */
  release(seq: SeqId, layer: number, tier: TierName, blocks: number[]): void {
    this.pool(tier).freeMany(blocks);
    if (this.recordChanges && blocks.length > 0) this.freed.push({ seq, layer, tier, blocks: blocks.slice() });
  }

  /** Drops a sequence's tables, freeing its blocks. */
  free(seq: SeqId): void {
    const kv = this.seqs.get(seq);
    if (!kv) return;
    for (let l = 0; l < this.numLayers; l++) this.release(seq, l, kv.tiers[l], kv.tables[l]);
    this.seqs.delete(seq);
  }

  /** Detaches a sequence's tables without freeing, for a caller that frees them later. */
  detach(seq: SeqId): SeqKv | undefined {
    const kv = this.seqs.get(seq);
    this.seqs.delete(seq);
    return kv;
  }

  drainChanges(): { allocated: BlockChange[]; freed: BlockChange[] } {
    const out = { allocated: this.allocated, freed: this.freed };
    this.allocated = [];
    this.freed = [];
    return out;
  }
}
