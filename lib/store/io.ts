// Typed access to the store's native I/O (csrc/store): chunk reads and writes between a
// host-tier pool's blocks and files or memory, on the store's own native threads. Each op
// returns a Work like a backend op: a failed or refused chunk rejects it (its message names
// the fault, see faultOf), and a backend op that waits for it is skipped. Ops are not
// ordered among themselves; use waitFor or await.
import { KVPool, nativeEventsOf, workFromNative, type WaitList, type Work } from '../backend.js';
import { native, type NativeIoReport, type NativeStoreIo } from '../native.js';
import type { ChunkSpec } from './format.js';
import { keyBytes, type ChunkKey } from './keys.js';

/**
 * One chunk's layer-blocks in a host-tier pool: blocks[l * blocksPerLayer + j] holds layer
 * l's j-th block of the chunk (chunkTokens / blockSize blocks per layer). Distinct ids.
 */
export interface ChunkBlocks {
  pool: KVPool;
  blocks: Int32Array;
}

export type IoReport = NativeIoReport;
export interface ValueReport extends IoReport {
  /** The whole chunk value (header and payload). */
  value: Buffer;
}

export interface ChunkIoOptions {
  /** Native I/O threads (default 4): chunks in flight at once. */
  threads?: number;
  /** Read bandwidth cap in bytes/s for loads (0 or absent: none). */
  readBytesPerSecond?: number;
  /** Bytes an idle store may deliver at once before the cap applies (default 0). */
  readBurstBytes?: number;
}

function blocksOf(b: ChunkBlocks, op: string): { pool: KVPool; blocks: Int32Array } {
  if (typeof b !== 'object' || b === null) throw new TypeError(`${op}: blocks must be { pool, blocks }`);
  if (!(b.pool instanceof KVPool)) throw new TypeError(`${op}: pool must be a KVPool`);
  return b;
}

export class ChunkIo {
  private handle: NativeStoreIo | undefined;

  constructor(opts: ChunkIoOptions = {}) {
    const Ctor = native().StoreIo;
    this.handle = new Ctor(opts);
  }

  private io(): NativeStoreIo {
    if (!this.handle) throw new Error('ChunkIo has been closed');
    return this.handle;
  }

  get threads(): number {
    return this.handle?.threads ?? 0;
  }
  /** The read cap in bytes/s (0: none). */
  get readCap(): number {
    return this.handle?.readCap ?? 0;
  }
  setReadCap(bytesPerSecond: number, burstBytes = 0): void {
    this.io().setReadCap(bytesPerSecond, burstBytes);
  }

  /** Loads a chunk file into blocks, verified. */
  readFile(dst: ChunkBlocks, path: string, spec: ChunkSpec, key: ChunkKey, opts: { waitFor?: WaitList } = {}): Work<IoReport> {
    const d = blocksOf(dst, 'readFile');
    return workFromNative(
      this.io().readFile(d.pool.handle, d.blocks, path, spec.native, keyBytes(key), nativeEventsOf(opts.waitFor, 'readFile: waitFor')),
      (v) => v as IoReport,
    );
  }

  /** Loads a chunk value held in memory (one or more buffers, in order) into blocks, verified. */
  scatter(dst: ChunkBlocks, segments: readonly Uint8Array[], spec: ChunkSpec, key: ChunkKey, opts: { waitFor?: WaitList } = {}): Work<IoReport> {
    const d = blocksOf(dst, 'scatter');
    return workFromNative(
      this.io().scatter(d.pool.handle, d.blocks, segments as Uint8Array[], spec.native, keyBytes(key), nativeEventsOf(opts.waitFor, 'scatter: waitFor')),
      (v) => v as IoReport,
    );
  }

  /** Saves blocks as `<dir>/<key>.kvc`, atomically (temp file, fdatasync, rename). */
  writeFile(src: ChunkBlocks, dir: string, spec: ChunkSpec, key: ChunkKey, opts: { waitFor?: WaitList } = {}): Work<IoReport> {
    const s = blocksOf(src, 'writeFile');
    return workFromNative(
      this.io().writeFile(s.pool.handle, s.blocks, dir, spec.native, keyBytes(key), nativeEventsOf(opts.waitFor, 'writeFile: waitFor')),
      (v) => v as IoReport,
    );
  }

  /** Packs blocks into one chunk value (header and payload) in a new Buffer. */
  gather(src: ChunkBlocks, spec: ChunkSpec, key: ChunkKey, opts: { waitFor?: WaitList } = {}): Work<ValueReport> {
    const s = blocksOf(src, 'gather');
    return workFromNative(
      this.io().gather(s.pool.handle, s.blocks, spec.native, keyBytes(key), nativeEventsOf(opts.waitFor, 'gather: waitFor')),
      (v) => v as ValueReport,
    );
  }

  /** Reads and verifies a chunk file into a new Buffer (promotion to memory). */
  readValue(path: string, spec: ChunkSpec, key: ChunkKey): Work<ValueReport> {
    return workFromNative(this.io().readValue(path, spec.native, keyBytes(key)), (v) => v as ValueReport);
  }

  /** Verifies a chunk value and writes it as `<dir>/<key>.kvc`, atomically (promotion to disk). */
  writeValue(dir: string, segments: readonly Uint8Array[], spec: ChunkSpec, key: ChunkKey): Work<IoReport> {
    return workFromNative(this.io().writeValue(dir, segments as Uint8Array[], spec.native, keyBytes(key)), (v) => v as IoReport);
  }

  /**
   * Reads numBlocks blocks' worth of a file, from byte `offset`, into the contiguous blocks
   * [firstBlock, firstBlock + numBlocks) of a host pool, on the same threads, with no checks:
   * the baseline benchmarks set loads beside.
   */
  readPlain(path: string, offset: number, pool: KVPool, firstBlock: number, numBlocks: number): Work<IoReport> {
    return workFromNative(this.io().readPlain(path, offset, pool.handle, firstBlock, numBlocks), (v) => v as IoReport);
  }

  /** Drops a file's cached pages so its next read comes from the device (benchmarks of cold reads). */
  dropPageCache(path: string): void {
    this.io().dropPageCache(path);
  }

  /** The XXH3 code path the payload checksum runs ('avx512', 'avx2' or 'sse2' on x86-64; chosen at run time), for benchmark output. */
  static get checksumPath(): string {
    return native().storeChecksumPath;
  }

  /** Stops the threads. Await every op first: close() waits for ops still queued. */
  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}
