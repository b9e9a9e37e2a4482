// Which prefix chunks a request finds in the store when it arrives. The simulator has no
// real store, so the workload is annotated up front by replaying one: an LRU over chunk
// hashes with a capacity in chunks, visited in arrival order. A request's chunks enter the
// store when it arrives (its prefill computes or loads them, so later requests can load
// them); a hit is the longest run of leading chunks present, since a chained hash is only
// useful when every chunk before it is too.
import type { Request } from '../contract/request.js';

/** An LRU set of chunk hashes. A Map from key to a slot in an index-linked list (head =
 *  least recently used): every operation is O(1). (Re-inserting into a Map to mark a key
 *  recent and evicting through map.keys().next() looks O(1) but is not: V8 leaves deleted
 *  entries in place until it rehashes, and the iterator walks over them from the front.) */
export class ChunkLru {
  readonly capacity: number;
  private readonly slotOf = new Map<string, number>();
  private readonly keys: string[] = [];
  private readonly prev: number[] = [];
  private readonly next: number[] = [];
  private head = -1;
  private tail = -1;

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) throw new Error(`ChunkLru: capacity must be an integer >= 0, got ${capacity}`);
    this.capacity = capacity;
  }

  get size(): number {
    return this.slotOf.size;
  }

  has(key: string): boolean {
    return this.slotOf.has(key);
  }

  /** Marks a present key as most recently used; false if absent. */
  touch(key: string): boolean {
    const s = this.slotOf.get(key);
    if (s === undefined) return false;
    this.unlink(s);
    this.append(s);
    return true;
  }

  /** Inserts (or refreshes) a key, evicting the least recently used beyond capacity. */
  put(key: string): void {
    if (this.capacity === 0 || this.touch(key)) return;
    let s: number;
    if (this.slotOf.size < this.capacity) {
      s = this.keys.length;
      this.keys.push(key);
      this.prev.push(-1);
      this.next.push(-1);
    } else {
      s = this.head;
      this.unlink(s);
      this.slotOf.delete(this.keys[s]);
      this.keys[s] = key;
    }
    this.slotOf.set(key, s);
    this.append(s);
  }

  private unlink(s: number): void {
    const p = this.prev[s];
    const n = this.next[s];
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  private append(s: number): void {
    this.prev[s] = this.tail;
    this.next[s] = -1;
    if (this.tail >= 0) this.next[this.tail] = s;
    else this.head = s;
    this.tail = s;
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
