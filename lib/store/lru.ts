// An LRU over entries with byte sizes, for the store's local tiers. Entries may be pinned
// (a load is reading them): eviction skips them. Space can be reserved ahead of an insert,
// so writes in flight count against the capacity before they land. Every operation is
// O(1) except eviction, which is O(entries evicted + pinned entries skipped).

interface Node<V> {
  key: string;
  value: V;
  bytes: number;
  pins: number;
  prev: Node<V> | null;
  next: Node<V> | null;
}

export interface Evicted<V> {
  key: string;
  value: V;
  bytes: number;
}

export class ByteLru<V> {
  readonly capacityBytes: number;
  private readonly map = new Map<string, Node<V>>();
  private head: Node<V> | null = null; // least recently used
  private tail: Node<V> | null = null;
  private used = 0;
  private pinnedBytes = 0;
  private reservedBytes = 0;

  constructor(capacityBytes: number) {
    if (!(Number.isFinite(capacityBytes) && capacityBytes >= 0)) throw new RangeError(`capacityBytes must be a number >= 0, got ${capacityBytes}`);
    this.capacityBytes = capacityBytes;
  }

  /** Bytes of the entries held (not counting reservations). */
  get bytes(): number {
    return this.used;
  }
  get reserved(): number {
    return this.reservedBytes;
  }
  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** The value, marked most recently used. */
  get(key: string): V | undefined {
    const n = this.map.get(key);
    if (!n) return undefined;
    this.unlink(n);
    this.append(n);
    return n.value;
  }

  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    const out: string[] = [];
    for (let n = this.head; n; n = n.next) out.push(n.key);
    return out;
  }

  /** Pins an entry against eviction (counted: unpin as often). False when absent. */
  pin(key: string): boolean {
    const n = this.map.get(key);
    if (!n) return false;
    if (n.pins++ === 0) this.pinnedBytes += n.bytes;
    return true;
  }

  unpin(key: string): void {
    const n = this.map.get(key);
    if (!n || n.pins === 0) return;
    if (--n.pins === 0) this.pinnedBytes -= n.bytes;
  }

  isPinned(key: string): boolean {
    return (this.map.get(key)?.pins ?? 0) > 0;
  }

  /**
   * Makes room for `bytes` more and reserves them, evicting least recently used unpinned
   * entries. Returns what it evicted, or undefined (and evicts nothing) when the bytes
   * cannot fit: more than the capacity, or the rest is pinned or reserved.
   */
  reserve(bytes: number): Evicted<V>[] | undefined {
    const over = this.used + this.reservedBytes + bytes - this.capacityBytes;
    if (bytes > this.capacityBytes || over > this.used - this.pinnedBytes) return undefined;
    const out: Evicted<V>[] = [];
    let freed = 0;
    let n = this.head;
    while (freed < over && n) {
      const next = n.next;
      if (n.pins === 0) {
        this.remove(n);
        freed += n.bytes;
        out.push({ key: n.key, value: n.value, bytes: n.bytes });
      }
      n = next;
    }
    this.reservedBytes += bytes;
    return out;
  }

  /** Gives back a reservation that will not be used. */
  unreserve(bytes: number): void {
    this.reservedBytes = Math.max(0, this.reservedBytes - bytes);
  }

  /** Inserts (most recently used) into space reserved before; replaces an entry with the same key. */
  insertReserved(key: string, value: V, bytes: number): void {
    this.unreserve(bytes);
    const old = this.map.get(key);
    if (old) this.remove(old);
    const n: Node<V> = { key, value, bytes, pins: 0, prev: null, next: null };
    this.map.set(key, n);
    this.used += bytes;
    this.append(n);
  }

  /** reserve + insertReserved; undefined when it does not fit (nothing changed). */
  put(key: string, value: V, bytes: number): Evicted<V>[] | undefined {
    const old = this.map.get(key);
    if (old && old.pins === 0) {
      this.remove(old);
      const ev = this.reserve(bytes);
      if (!ev) {
        this.insertReserved(key, old.value, old.bytes);
        return undefined;
      }
      this.insertReserved(key, value, bytes);
      return ev;
    }
    if (old) return undefined; // a pinned entry is being read: keep it
    const ev = this.reserve(bytes);
    if (!ev) return undefined;
    this.insertReserved(key, value, bytes);
    return ev;
  }

  /** Removes an entry now, pinned or not (a pinned reader keeps its own reference). */
  delete(key: string): V | undefined {
    const n = this.map.get(key);
    if (!n) return undefined;
    this.remove(n);
    return n.value;
  }

  private remove(n: Node<V>): void {
    this.unlink(n);
    this.map.delete(n.key);
    this.used -= n.bytes;
    if (n.pins > 0) this.pinnedBytes -= n.bytes;
    n.pins = 0;
  }

  private unlink(n: Node<V>): void {
    if (n.prev) n.prev.next = n.next;
    else this.head = n.next;
    if (n.next) n.next.prev = n.prev;
    else this.tail = n.prev;
    n.prev = n.next = null;
  }

  private append(n: Node<V>): void {
    n.prev = this.tail;
    n.next = null;
    if (this.tail) this.tail.next = n;
    else this.head = n;
    this.tail = n;
  }
}
