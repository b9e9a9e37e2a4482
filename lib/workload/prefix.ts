// Which prefix chunks a request finds in the store when it arrives. The simulator has no
// real store, so the workload is annotated up front by replaying one: an LRU over chunk
// hashes with a capacity in chunks, visited in arrival order. A request's chunks enter the
// store when it arrives (its prefill computes or loads them, so later requests can load
// them); a hit is the longest run of leading chunks present, since a chained hash is only
// useful when every chunk before it is too.
import type { Request } from './request.js';

/** An LRU set of chunk hashes. Map keeps insertion order, so re-inserting marks recent. */
export class ChunkLru {
  readonly capacity: number;
  private readonly map = new Map<string, true>();

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) throw new Error(`ChunkLru: capacity must be an integer >= 0, got ${capacity}`);
    this.capacity = capacity;
  }

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Marks a present key as most recently used; false if absent. */
  touch(key: string): boolean {
    if (!this.map.delete(key)) return false;
    this.map.set(key, true);
    return true;
  }

  /** Inserts (or refreshes) a key, evicting the least recently used beyond capacity. */
  put(key: string): void {
    if (this.capacity === 0) return;
    this.map.delete(key);
    this.map.set(key, true);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }
}

/** Returns copies of the requests (same order) with prefix.storedChunks filled in; requests
 *  without prefix info are returned unchanged. The input is not modified, so one workload
 *  can be annotated for several store sizes. */
export function annotatePrefixHits(reqs: Request[], opts: { capacityChunks: number }): Request[] {
  const cap = opts?.capacityChunks;
  if (!(Number.isInteger(cap) && cap >= 0)) throw new Error(`annotatePrefixHits: capacityChunks must be an integer >= 0, got ${cap}`);
  const store = new ChunkLru(cap);
  const order = reqs.map((_, i) => i).sort((a, b) => reqs[a].arrival - reqs[b].arrival || a - b);
  const out: Request[] = reqs.slice();
  for (const i of order) {
    const req = reqs[i];
    if (!req.prefix) continue;
    const hashes = req.prefix.chunkHashes;
    let hit = 0;
    while (hit < hashes.length && store.touch(hashes[hit])) hit++;
    for (const h of hashes) store.put(h);
    out[i] = { ...req, prefix: { ...req.prefix, storedChunks: hit } };
  }
  return out;
}
