// A pool of layer-blocks in one tier. Block ids are dense ints [0, numBlocks); the free list
// is a stack in an Int32Array so alloc/free are O(1) and allocation order is deterministic
// (last freed, first reused — warm blocks first, as vLLM's block pool does).
// Reference counts let prefix blocks be shared by several sequences: a block returns to
// the free list only when its last owner frees it.

export interface BlockPoolOptions {
  /** Fraction of the pool that new admissions must leave free (vLLM's 1% watermark), so
   *  running sequences can still grow by a block without immediate preemption. */
  watermark?: number;
  /** Name used in error messages ("device", "host"). */
  name?: string;
}

export class BlockPool {
  readonly numBlocks: number;
  readonly name: string;
  /** Blocks admissions must leave free. */
  readonly watermarkBlocks: number;
  private readonly freeStack: Int32Array;
  private top: number;
  private readonly refs: Int32Array;

  constructor(numBlocks: number, opts: BlockPoolOptions = {}) {
    if (!Number.isInteger(numBlocks) || numBlocks < 0 || numBlocks > 2 ** 31 - 1) {
      throw new RangeError(`BlockPool: numBlocks must be an integer in [0, 2^31), got ${numBlocks}`);
    }
    const wm = opts.watermark ?? 0;
    if (!(wm >= 0 && wm < 1)) throw new RangeError(`BlockPool: watermark must be in [0, 1), got ${wm}`);
    this.numBlocks = numBlocks;
    this.name = opts.name ?? 'pool';
    this.watermarkBlocks = Math.ceil(numBlocks * wm);
    this.freeStack = new Int32Array(numBlocks);
    this.refs = new Int32Array(numBlocks);
    // Fill so that block 0 is handed out first.
    for (let i = 0; i < numBlocks; i++) this.freeStack[i] = numBlocks - 1 - i;
    this.top = numBlocks;
  }

  get numFree(): number {
    return this.top;
  }

  get numUsed(): number {
    return this.numBlocks - this.top;
  }

  /** Whether n more blocks can be taken; with `admission`, the watermark must stay free. */
  canAllocate(n: number, admission = false): boolean {
    return n <= this.top - (admission ? this.watermarkBlocks : 0);
  }

  alloc(): number {
    if (this.top === 0) throw new Error(`BlockPool(${this.name}): out of blocks (capacity ${this.numBlocks})`);
    const b = this.freeStack[--this.top];
    this.refs[b] = 1;
    return b;
  }

  /** n blocks, all or nothing. */
  allocMany(n: number, out: number[] = []): number[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`BlockPool(${this.name}).allocMany: n must be a non-negative integer, got ${n}`);
    if (n > this.top) throw new Error(`BlockPool(${this.name}): asked for ${n} blocks, ${this.top} free (capacity ${this.numBlocks})`);
    for (let i = 0; i < n; i++) {
      const b = this.freeStack[--this.top];
      this.refs[b] = 1;
      out.push(b);
    }
    return out;
  }

  /** Another owner of an allocated block (a shared prefix block). */
  share(block: number): void {
    this.check(block);
    if (this.refs[block] === 0) throw new Error(`BlockPool(${this.name}).share: block ${block} is free`);
    this.refs[block]++;
  }

  /** Drops one reference; the block is free again when none remain. */
  free(block: number): void {
    this.check(block);
    const r = this.refs[block];
    if (r === 0) throw new Error(`BlockPool(${this.name}).free: block ${block} is already free (double free)`);
    this.refs[block] = r - 1;
    if (r === 1) this.freeStack[this.top++] = block;
  }

  freeMany(blocks: readonly number[]): void {
    for (let i = 0; i < blocks.length; i++) this.free(blocks[i]);
  }

  refCount(block: number): number {
    this.check(block);
    return this.refs[block];
  }

  private check(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.numBlocks) {
      throw new RangeError(`BlockPool(${this.name}): block id ${block} out of range [0, ${this.numBlocks})`);
    }
  }
}
