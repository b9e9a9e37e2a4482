// The prefix KV store: one interface over a chain of tiers, shaped like vLLM's KV
// connector.
//   keys(tokens)             the chunk keys of a prompt's full chunks
//   lookup(keys)             how many leading chunks are stored (in any tier)
//   load(key, dst)           chunk -> the caller's host-tier blocks, verified; never throws
//                            for a bad or missing chunk: the result says it missed, and why
//   save(key, src)           host-tier blocks -> every tier (write-through)
//   takeFailedLoads()        the loads that missed since the last call, for the engine to
//                            hand their chunks back to compute
//   readBandwidth()          a moving estimate of the bytes/s loads reach
//
// Tiers, searched in this order: memory (LRU by bytes) -> local disk (the embedded default)
// -> Redis (shared by many servers). A hit in a lower tier is promoted to the tiers above it
// in the background (disk -> memory; Redis -> memory and disk), off the load's path.
//
// Writes are write-through: a save goes to every tier that lacks the chunk, and resolves
// when each has taken it or refused (a full or failing tier is counted, never an error of the
// save). Write-back would keep Redis without a chunk until memory evicts it, so the other
// servers would recompute a prefix this one already has, and a crash would lose what was
// only in memory; a save is already off the critical path, so write-through costs no TTFT.
//
// Guarantees: a chunk reaches the destination blocks only through a native load that
// checks its header (magic, version, header checksum, dtype, layout, model fingerprint,
// key, size) before reading the payload and its XXH3-128 checksum after, and the result is
// ok only when every check passed. A chunk that fails is a miss: counted by fault, logged,
// removed from the tier it came from, and the next tier is tried. While a load runs, its
// blocks hold partial bytes: the caller must not let anything read them until the result
// says ok (the engine issues its host -> device copy after awaiting the load).
import os from 'node:os';
import path from 'node:path';
import { KVPool, type WaitList } from '../backend.js';
import { CHUNK_FAULTS, chunkSpec, faultOf, type ChunkFault, type ChunkSpec } from './format.js';
import { BandwidthMeter } from './bandwidth.js';
import { ChunkIo, type ChunkBlocks } from './io.js';
import { chunkKeys, isChunkKey, keyContext, type ChunkKey, type KeyContext, type ModelFingerprint } from './keys.js';
import { DiskTier, type DiskTierOptions, type DiskTierStats } from './tiers/disk.js';
import { MemoryTier, type MemoryTierOptions, type MemoryTierStats } from './tiers/memory.js';
import { RedisTier, type RedisTierOptions, type RedisTierStats } from './tiers/redis.js';

export type StoreTierName = 'memory' | 'disk' | 'redis';

export interface PrefixStoreOptions {
  /** The model whose KV the store holds; part of every key and checked on every load. */
  fingerprint: ModelFingerprint;
  /** Tokens per layer-block of the pools chunks move through. */
  blockSize: number;
  /** Tokens per chunk (256 or 512 are usual), a multiple of blockSize. */
  chunkTokens: number;
  /** Tenant or salt: stores with different namespaces never share a chunk. Default ''. */
  namespace?: string;
  /** Memory tier (none unless given). */
  memory?: MemoryTierOptions | false;
  /**
   * Local disk tier. Default when no tier is given: KVCAKE_STORE_DIR (else
   * ~/.cache/kvcake/prefix-store) with KVCAKE_STORE_BYTES (else 32 GiB).
   */
  disk?: DiskTierOptions | false;
  /** Redis tier (none unless given). */
  redis?: RedisTierOptions | false;
  /** Cap on load bandwidth in bytes/s, to emulate a slower store (default none). */
  readBytesPerSecond?: number;
  /** Bytes an idle store may deliver at once under the cap (default 0). */
  readBurstBytes?: number;
  /** Native I/O threads: chunk transfers in flight at once (default 4). */
  ioThreads?: number;
  /** Where failures and tier changes are reported (default: warnings to stderr). */
  log?: (e: StoreLogEvent) => void;
}

export interface StoreLogEvent {
  level: 'warn' | 'info';
  event: string;
  message: string;
  key?: ChunkKey;
  tier?: StoreTierName;
  fault?: ChunkFault;
}

export type LoadResult =
  | { ok: true; key: ChunkKey; tier: StoreTierName; bytes: number; seconds: number }
  | { ok: false; key: ChunkKey; fault: ChunkFault; message: string; tried: StoreTierName[] };

export interface FailedLoad {
  key: ChunkKey;
  fault: ChunkFault;
  message: string;
  /** The tiers that held the chunk and refused it (empty: none had it). */
  tried: StoreTierName[];
}

export type TierSave = 'stored' | 'present' | 'rejected' | 'failed' | 'skipped';
export interface SaveResult {
  key: ChunkKey;
  /** Per tier: stored now, already there, refused for room, failed (counted and logged), or skipped (Redis down). */
  tiers: Partial<Record<StoreTierName, TierSave>>;
}

export interface StoreStats {
  namespace: string;
  chunkTokens: number;
  chunkBytes: number;
  lookups: number;
  lookupChunks: number;
  lookupHits: number;
  loads: { hits: number; misses: number; bytes: number };
  /** Refused or failed load attempts by fault (a load may try several tiers). */
  faults: Record<ChunkFault, number>;
  hitsByTier: Record<StoreTierName, number>;
  saves: { calls: number; failures: number };
  promotions: { memory: number; disk: number; failed: number };
  readBytesPerSecond: number | undefined;
  readCap: number;
  memory?: MemoryTierStats;
  disk?: DiskTierStats;
  redis?: RedisTierStats;
}

function defaultDisk(): DiskTierOptions {
  const dir = process.env.KVCAKE_STORE_DIR || path.join(os.homedir(), '.cache', 'kvcake', 'prefix-store');
  const env = process.env.KVCAKE_STORE_BYTES;
  const capacityBytes = env ? Number(env) : 32 * 2 ** 30;
  if (!(Number.isFinite(capacityBytes) && capacityBytes >= 0)) throw new RangeError(`KVCAKE_STORE_BYTES must be a byte count, got '${env}'`);
  return { dir, capacityBytes };
}

function defaultLog(e: StoreLogEvent): void {
  if (e.level === 'warn') console.warn(e.message);
}

const ARG_ERRORS = [TypeError, RangeError];

export class PrefixStore implements AsyncDisposable {
  readonly spec: ChunkSpec;
  readonly namespace: string;
  private readonly ctx: KeyContext;
  private readonly io: ChunkIo;
  private memory?: MemoryTier;
  private disk?: DiskTier;
  private redis?: RedisTier;
  private readonly logFn: (e: StoreLogEvent) => void;
  private readonly meters = { all: new BandwidthMeter(), memory: new BandwidthMeter(), disk: new BandwidthMeter(), redis: new BandwidthMeter() };
  private failed: FailedLoad[] = [];
  private readonly saving = new Map<ChunkKey, Promise<SaveResult>>();
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;
  private readonly st = {
    lookups: 0,
    lookupChunks: 0,
    lookupHits: 0,
    loads: { hits: 0, misses: 0, bytes: 0 },
    faults: Object.fromEntries(CHUNK_FAULTS.map((f) => [f, 0])) as Record<ChunkFault, number>,
    hitsByTier: { memory: 0, disk: 0, redis: 0 },
    saves: { calls: 0, failures: 0 },
    promotions: { memory: 0, disk: 0, failed: 0 },
  };

  private constructor(opts: PrefixStoreOptions) {
    this.spec = chunkSpec(opts.fingerprint, opts.blockSize, opts.chunkTokens);
    this.namespace = opts.namespace ?? '';
    this.ctx = keyContext(this.spec.digest, this.namespace);
    this.logFn = opts.log ?? defaultLog;
    this.io = new ChunkIo({ threads: opts.ioThreads, readBytesPerSecond: opts.readBytesPerSecond, readBurstBytes: opts.readBurstBytes });
  }

  /** Opens the tiers: rebuilds the disk index, connects to Redis (see RedisTierOptions.required). */
  static async open(opts: PrefixStoreOptions): Promise<PrefixStore> {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('openPrefixStore: options must be an object');
    const s = new PrefixStore(opts);
    try {
      const none = !opts.memory && !opts.disk && !opts.redis;
      if (opts.memory) s.memory = new MemoryTier(opts.memory, s.io, s.spec);
      const disk = opts.disk || (none && opts.disk !== false ? defaultDisk() : undefined);
      if (disk) s.disk = await DiskTier.open(disk, s.io, s.spec);
      if (opts.redis) s.redis = await RedisTier.open(opts.redis, s.spec, (level, event, message) => s.log({ level, event, message, tier: 'redis' }));
      if (!s.memory && !s.disk && !s.redis) throw new RangeError('openPrefixStore: every tier is disabled; enable memory, disk or redis');
    } catch (err) {
      s.io.close();
      throw err;
    }
    return s;
  }

  get chunkTokens(): number {
    return this.spec.chunkTokens;
  }
  get tiers(): StoreTierName[] {
    return [this.memory && 'memory', this.disk && 'disk', this.redis && 'redis'].filter(Boolean) as StoreTierName[];
  }

  /** Keys of the full chunks of a prompt's token ids, front to back. */
  keys(tokens: ArrayLike<number>): ChunkKey[] {
    return chunkKeys(tokens, this.spec.chunkTokens, this.ctx);
  }

  /** How many leading keys are stored in some tier (one pipelined round trip to Redis at most). */
  async lookup(keys: readonly ChunkKey[], opts: { signal?: AbortSignal } = {}): Promise<number> {
    this.open();
    if (!Array.isArray(keys)) throw new TypeError('lookup: keys must be an array of chunk keys');
    keys.forEach((k, i) => {
      if (!isChunkKey(k)) throw new TypeError(`lookup: keys[${i}] is not a chunk key (64 lowercase hex digits)`);
    });
    opts.signal?.throwIfAborted();
    const local = (k: ChunkKey) => (this.memory?.has(k) ?? false) || (this.disk?.has(k) ?? false);
    let n = 0;
    while (n < keys.length && local(keys[n])) n++;
    if (this.redis && n < keys.length && this.redis.available) {
      const rest = keys.slice(n);
      const found = await abortable(this.redis.has(rest), opts.signal);
      let i = 0;
      while (i < rest.length && (found[i] || local(rest[i]))) i++;
      n += i;
    }
    this.st.lookups++;
    this.st.lookupChunks += keys.length;
    this.st.lookupHits += n;
    return n;
  }

  /**
   * Loads chunk `key` into dst's blocks (see ChunkBlocks), trying each tier that may hold it.
   * Resolves ok only when the bytes in dst are the verified chunk; otherwise a miss (the
   * chunk is also listed by takeFailedLoads). Rejects only for a bad argument.
   */
  load(key: ChunkKey, dst: ChunkBlocks): Promise<LoadResult> {
    this.open();
    this.checkBlocks('load', key, dst);
    return this.track(this.loadFrom(key, dst));
  }

  private async loadFrom(key: ChunkKey, dst: ChunkBlocks): Promise<LoadResult> {
    const tried: StoreTierName[] = [];
    let last: { fault: ChunkFault; message: string } | undefined;
    this.meters.all.begin();
    let done: Extract<LoadResult, { ok: true }> | undefined;
    try {
      for (const tier of [this.memory, this.disk]) {
        if (!tier || !tier.has(key)) continue;
        tried.push(tier.name);
        const meter = this.meters[tier.name];
        meter.begin();
        const t0 = performance.now();
        try {
          const r = await tier.load(key, dst);
          meter.end(r.bytes);
          done = { ok: true, key, tier: tier.name, bytes: r.bytes, seconds: (performance.now() - t0) / 1000 };
          if (tier.name === 'disk') this.promoteFromDisk(key);
          break;
        } catch (err) {
          meter.end(0);
          if (ARG_ERRORS.some((E) => err instanceof E)) throw err;
          last = this.refused(key, tier.name, err);
          if (tier.name === 'memory' && last.fault !== 'io') this.memory!.delete(key);
        }
      }
      if (!done && this.redis) {
        const redis = this.redis;
        if (redis.available) tried.push('redis');
        const meter = this.meters.redis;
        meter.begin();
        const t0 = performance.now();
        const got = redis.available ? await redis.get(key) : { fault: 'io' as const, message: `redis ${key.slice(0, 12)}: io: Redis is down` };
        if ('value' in got) {
          try {
            const r = await this.io.scatter(dst, got.value, this.spec, key);
            meter.end(r.bytes);
            done = { ok: true, key, tier: 'redis', bytes: r.bytes, seconds: (performance.now() - t0) / 1000 };
            this.promoteFromRedis(key, got.value);
          } catch (err) {
            meter.end(0);
            if (ARG_ERRORS.some((E) => err instanceof E)) throw err;
            last = this.refused(key, 'redis', err);
            if (last.fault !== 'io') redis.delete(key).catch(() => {});
          }
        } else {
          meter.end(0);
          if (got.fault === 'io') last = this.refused(key, 'redis', new Error(got.message));
          else if (!last) last = got;
        }
      }
    } finally {
      this.meters.all.end(done?.ok ? done.bytes : 0);
    }
    if (done) {
      this.st.loads.hits++;
      this.st.loads.bytes += done.bytes;
      this.st.hitsByTier[done.tier]++;
      return done;
    }
    this.st.loads.misses++;
    const miss = last ?? { fault: 'missing' as const, message: `load ${key.slice(0, 12)}: missing: no tier holds the chunk` };
    this.failed.push({ key, fault: miss.fault, message: miss.message, tried });
    return { ok: false, key, fault: miss.fault, message: miss.message, tried };
  }

  // Counts and logs a refused attempt; 'missing' (evicted since lookup) is routine.
  private refused(key: ChunkKey, tier: StoreTierName, err: unknown): { fault: ChunkFault; message: string } {
    const fault = (err as { fault?: ChunkFault }).fault ?? faultOf(err);
    const message = (err as Error).message ?? String(err);
    this.st.faults[fault]++;
    this.log({ level: fault === 'missing' ? 'info' : 'warn', event: 'load-refused', message: `prefix store: ${tier} chunk refused: ${message}`, key, tier, fault });
    return { fault, message };
  }

  private promoteFromDisk(key: ChunkKey): void {
    const memory = this.memory;
    const disk = this.disk!;
    if (!memory || memory.has(key) || this.spec.valueBytes > memory.stats().capacityBytes) return;
    this.background(async () => {
      const r = await disk.readValue(key);
      if (memory.put(key, [r.value])) this.st.promotions.memory++;
    });
  }

  private promoteFromRedis(key: ChunkKey, value: Buffer[]): void {
    if (this.memory && !this.memory.has(key) && this.memory.put(key, value)) this.st.promotions.memory++;
    const disk = this.disk;
    if (disk && !disk.has(key))
      this.background(async () => {
        if ((await disk.saveValue(key, value)) === 'stored') this.st.promotions.disk++;
      });
  }

  private background(f: () => Promise<void>): void {
    this.track(
      f().catch((err) => {
        this.st.promotions.failed++;
        this.log({ level: 'info', event: 'promotion-failed', message: `prefix store: promotion failed: ${(err as Error).message}` });
      }),
    );
  }

  /**
   * Saves chunk `key` from src's blocks (after waitFor: e.g. the device -> host copy that
   * filled them) to every tier that lacks it. Resolves when src's blocks are no longer read
   * and every tier has answered; a tier's failure is counted in the result, not thrown.
   */
  save(key: ChunkKey, src: ChunkBlocks, opts: { waitFor?: WaitList } = {}): Promise<SaveResult> {
    this.open();
    this.checkBlocks('save', key, src);
    const running = this.saving.get(key);
    if (running) return running;
    const p = this.track(this.saveTo(key, src, opts.waitFor)).finally(() => this.saving.delete(key));
    this.saving.set(key, p);
    return p;
  }

  private async saveTo(key: ChunkKey, src: ChunkBlocks, waitFor?: WaitList): Promise<SaveResult> {
    this.st.saves.calls++;
    const tiers: SaveResult['tiers'] = {};
    const failed = (tier: StoreTierName, err: unknown) => {
      if (ARG_ERRORS.some((E) => err instanceof E)) throw err;
      tiers[tier] = 'failed';
      this.st.saves.failures++;
      this.log({ level: 'warn', event: 'save-failed', message: `prefix store: ${tier} save failed: ${(err as Error).message}`, key, tier, fault: faultOf(err) });
    };
    const tasks: Promise<void>[] = [];
    if (this.disk) {
      const disk = this.disk;
      tasks.push(
        disk.save(key, src, waitFor).then(
          (r) => {
            tiers.disk = r;
          },
          (err) => failed('disk', err),
        ),
      );
    }
    const memory = this.memory;
    const redis = this.redis;
    if (memory || redis) {
      tasks.push(
        (async () => {
          const needMemory = !!memory && !memory.has(key);
          if (memory && !needMemory) tiers.memory = 'present';
          let needRedis = false;
          if (redis) {
            if (!redis.available) tiers.redis = 'skipped';
            else if ((await redis.has([key]))[0]) tiers.redis = 'present';
            else needRedis = true;
          }
          if (!needMemory && !needRedis) return;
          let value: Buffer;
          try {
            value = (await this.io.gather(src, this.spec, key, { waitFor })).value;
          } catch (err) {
            if (needMemory) failed('memory', err);
            if (needRedis) failed('redis', err);
            return;
          }
          if (needMemory) tiers.memory = memory!.put(key, [value]) ? 'stored' : 'rejected';
          if (needRedis) {
            try {
              await redis!.put(key, value);
              tiers.redis = 'stored';
            } catch (err) {
              failed('redis', err);
            }
          }
        })(),
      );
    }
    await Promise.all(tasks);
    return { key, tiers };
  }

  /** The loads that missed since the last call (oldest first), and forgets them. */
  takeFailedLoads(): FailedLoad[] {
    const out = this.failed;
    this.failed = [];
    return out;
  }

  /** Moving estimate of the load bandwidth reached, bytes/s (all tiers, or one); undefined before any load. */
  readBandwidth(tier?: StoreTierName): number | undefined {
    return this.meters[tier ?? 'all'].estimate();
  }

  /** Caps load bandwidth (bytes/s; 0 removes the cap). */
  setReadCap(bytesPerSecond: number, burstBytes = 0): void {
    this.open();
    this.io.setReadCap(bytesPerSecond, burstBytes);
  }

  stats(): StoreStats {
    return {
      namespace: this.namespace,
      chunkTokens: this.spec.chunkTokens,
      chunkBytes: this.spec.valueBytes,
      lookups: this.st.lookups,
      lookupChunks: this.st.lookupChunks,
      lookupHits: this.st.lookupHits,
      loads: { ...this.st.loads },
      faults: { ...this.st.faults },
      hitsByTier: { ...this.st.hitsByTier },
      saves: { ...this.st.saves },
      promotions: { ...this.st.promotions },
      readBytesPerSecond: this.readBandwidth(),
      readCap: this.io.readCap,
      memory: this.memory?.stats(),
      disk: this.disk?.stats(),
      redis: this.redis?.stats(),
    };
  }

  /** @internal Tier access for tests and benchmarks. */
  tier(name: 'memory'): MemoryTier | undefined;
  tier(name: 'disk'): DiskTier | undefined;
  tier(name: 'redis'): RedisTier | undefined;
  tier(name: StoreTierName): MemoryTier | DiskTier | RedisTier | undefined {
    return name === 'memory' ? this.memory : name === 'disk' ? this.disk : this.redis;
  }

  /** Waits for loads, saves and promotions in flight, then releases the threads and the Redis connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    await this.disk?.settle();
    await this.redis?.close();
    this.io.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private open(): void {
    if (this.closed) throw new Error('prefix store: closed');
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  private log(e: StoreLogEvent): void {
    try {
      this.logFn(e);
    } catch {
      // A throwing logger must not turn a miss into a failure.
    }
  }

  private checkBlocks(op: string, key: ChunkKey, b: ChunkBlocks): void {
    if (!isChunkKey(key)) throw new TypeError(`${op}: key must be a chunk key (64 lowercase hex digits), got ${JSON.stringify(key)}`);
    if (typeof b !== 'object' || b === null) throw new TypeError(`${op}: blocks must be { pool, blocks }`);
    if (!(b.pool instanceof KVPool)) throw new TypeError(`${op}: pool must be a KVPool`);
    if (b.pool.tier !== 'host') throw new RangeError(`${op}: pool must be a host-tier pool (the store moves chunks through host memory; copyBlocks moves them to the device)`);
    const l = b.pool.layout;
    const f = this.spec.fingerprint;
    if (l.numKvHeads !== f.numKvHeads || l.headDim !== f.headDim || l.blockSize !== this.spec.blockSize || l.dtype !== f.dtype)
      throw new RangeError(
        `${op}: the pool's layout (numKvHeads ${l.numKvHeads}, headDim ${l.headDim}, blockSize ${l.blockSize}, ${l.dtype}) does not match the store's chunks ` +
          `(numKvHeads ${f.numKvHeads}, headDim ${f.headDim}, blockSize ${this.spec.blockSize}, ${f.dtype})`,
      );
    if (!(b.blocks instanceof Int32Array)) throw new TypeError(`${op}: blocks must be an Int32Array`);
    if (b.blocks.length !== this.spec.blocksPerChunk)
      throw new RangeError(
        `${op}: blocks has ${b.blocks.length} entries, a chunk needs numLayers x blocksPerLayer = ${f.numLayers} x ${this.spec.blocksPerLayer} = ${this.spec.blocksPerChunk}`,
      );
  }
}

async function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Opens a prefix store (see PrefixStoreOptions; the local disk tier by default). */
export function openPrefixStore(opts: PrefixStoreOptions): Promise<PrefixStore> {
  return PrefixStore.open(opts);
}
