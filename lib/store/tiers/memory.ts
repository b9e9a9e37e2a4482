// Memory tier: chunk values (header and payload, one or more Buffers) in process memory,
// LRU by bytes. A value is pinned while a load copies it into pool blocks, so eviction
// never takes what a load is reading; a value that does not fit beside the pinned ones is
// refused rather than exceeding the capacity.
import type { ChunkSpec } from '../format.js';
import type { ChunkBlocks, ChunkIo, IoReport } from '../io.js';
import type { ChunkKey } from '../keys.js';
import { ByteLru } from '../lru.js';

export interface MemoryTierOptions {
  /** Bytes of chunk values held at most. */
  capacityBytes: number;
}

export interface MemoryTierStats {
  chunks: number;
  bytes: number;
  capacityBytes: number;
  evictions: number;
  /** Values refused: larger than the capacity, or no room beside pinned values. */
  rejected: number;
}

export class MemoryTier {
  readonly name = 'memory' as const;
  private readonly lru: ByteLru<Buffer[]>;
  private evictions = 0;
  private rejected = 0;

  constructor(
    opts: MemoryTierOptions,
    private readonly io: ChunkIo,
    private readonly spec: ChunkSpec,
  ) {
    if (typeof opts?.capacityBytes !== 'number') throw new TypeError('memory.capacityBytes must be a number of bytes');
    this.lru = new ByteLru(opts.capacityBytes);
  }

  has(key: ChunkKey): boolean {
    return this.lru.has(key);
  }

  /** Stores a value (its buffers are kept, not copied). False when refused. */
  put(key: ChunkKey, value: Buffer[]): boolean {
    const bytes = value.reduce((n, b) => n + b.length, 0);
    const evicted = this.lru.put(key, value, bytes);
    if (!evicted) {
      this.rejected++;
      return false;
    }
    this.evictions += evicted.length;
    return true;
  }

  delete(key: ChunkKey): void {
    this.lru.delete(key);
  }

  /** Copies the chunk into dst, verified; rejects with the native fault on failure. */
  async load(key: ChunkKey, dst: ChunkBlocks): Promise<IoReport> {
    const value = this.lru.get(key);
    if (!value) throw Object.assign(new Error(`memory ${key.slice(0, 12)}: missing: not in memory`), { fault: 'missing' });
    this.lru.pin(key);
    try {
      return await this.io.scatter(dst, value, this.spec, key);
    } finally {
      this.lru.unpin(key);
    }
  }

  isPinned(key: ChunkKey): boolean {
    return this.lru.isPinned(key);
  }

  /** Keys from least to most recently used. */
  keys(): ChunkKey[] {
    return this.lru.keys();
  }

  stats(): MemoryTierStats {
    return { chunks: this.lru.size, bytes: this.lru.bytes, capacityBytes: this.lru.capacityBytes, evictions: this.evictions, rejected: this.rejected };
  }
}
