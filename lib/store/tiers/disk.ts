// Local disk tier, the embedded default: a directory with one file per chunk, named
// "<64 hex digits of the key>.kvc" (never a name from user input), LRU by bytes within a
// capacity.
//
// Durability: a chunk file appears only complete (native temp file, fdatasync, rename,
// directory fsync), so a crash or kill -9 mid-write leaves at most a temp file, which the
// next start removes. The index lives in memory and is rebuilt from the directory at
// start (the store survives restarts); files are ordered by modification time, which a
// load refreshes, so the least recently used go first. Several processes may share a
// directory: writes are atomic and every load is verified, but each process keeps the
// capacity on its own view of the files.
import { constants as fsc } from 'node:fs';
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { WaitList } from '../../backend.js';
import { faultOf, type ChunkSpec } from '../format.js';
import type { ChunkBlocks, ChunkIo, IoReport, ValueReport } from '../io.js';
import { isChunkKey, type ChunkKey } from '../keys.js';
import { ByteLru } from '../lru.js';

export interface DiskTierOptions {
  /** The directory (created if missing). */
  dir: string;
  /** Bytes of chunk files kept at most. */
  capacityBytes: number;
}

export interface DiskTierStats {
  dir: string;
  chunks: number;
  bytes: number;
  capacityBytes: number;
  evictions: number;
  /** Saves refused: larger than the capacity, or no room beside files being read or written. */
  rejected: number;
  /** Chunk files found at start, and temp files of dead writers removed. */
  recovered: number;
  staleTempFiles: number;
}

const FILE_RE = /^([0-9a-f]{64})\.kvc$/;
const TEMP_RE = /^\.tmp\.(?:[0-9a-f]{64}\.(\d+)\.\d+|probe\.(\d+))$/;
// A temp file of a live process older than this is abandoned too (a writer finishes a chunk in seconds).
const STALE_TEMP_MS = 60 * 60 * 1000;

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DiskTier {
  readonly name = 'disk' as const;
  private readonly lru: ByteLru<true>;
  private evictions = 0;
  private rejected = 0;
  private recovered = 0;
  private staleTemps = 0;
  // Unlinks in flight by key: a new write of the same key waits for it, so a late unlink
  // cannot take the new file; close() waits for all.
  private readonly removals = new Map<ChunkKey, Promise<void>>();

  private constructor(
    readonly dir: string,
    capacityBytes: number,
    private readonly io: ChunkIo,
    private readonly spec: ChunkSpec,
  ) {
    this.lru = new ByteLru(capacityBytes);
  }

  /** Opens (and creates) the directory and rebuilds the index from its files. */
  static async open(opts: DiskTierOptions, io: ChunkIo, spec: ChunkSpec): Promise<DiskTier> {
    if (typeof opts?.dir !== 'string' || opts.dir.length === 0) throw new TypeError('disk.dir must be a directory path');
    if (typeof opts.capacityBytes !== 'number' || !(opts.capacityBytes >= 0)) throw new RangeError(`disk.capacityBytes must be a number of bytes >= 0, got ${opts.capacityBytes}`);
    const dir = path.resolve(opts.dir);
    const st = await stat(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new Error(`prefix store: cannot use disk.dir ${dir}: ${err.message}`, { cause: err });
    });
    if (st && !st.isDirectory()) throw new Error(`prefix store: disk.dir ${dir} exists and is not a directory`);
    if (!st) {
      try {
        await mkdir(dir, { recursive: true });
      } catch (err) {
        throw new Error(`prefix store: cannot create disk.dir ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
    // Fail at start, not on the first save, when the directory cannot take files.
    const probe = path.join(dir, `.tmp.probe.${process.pid}`);
    try {
      const fh = await open(probe, fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL, 0o644);
      await fh.close();
      await unlink(probe);
    } catch (err) {
      throw new Error(`prefix store: disk.dir ${dir} is not writable: ${(err as Error).message}`, { cause: err });
    }
    const tier = new DiskTier(dir, opts.capacityBytes, io, spec);
    await tier.rebuild();
    return tier;
  }

  private async rebuild(): Promise<void> {
    const names = await readdir(this.dir);
    const found: { key: ChunkKey; bytes: number; mtime: number }[] = [];
    const now = Date.now();
    await Promise.all(
      names.map(async (name) => {
        const m = FILE_RE.exec(name);
        const t = m ? undefined : TEMP_RE.exec(name);
        if (!m && !t) return;
        const s = await stat(path.join(this.dir, name)).catch(() => undefined);
        if (!s || !s.isFile()) return;
        if (m) {
          found.push({ key: m[1], bytes: s.size, mtime: s.mtimeMs });
        } else if (!alive(Number(t![1] ?? t![2])) || now - s.mtimeMs > STALE_TEMP_MS) {
          await unlink(path.join(this.dir, name)).catch(() => {});
          this.staleTemps++;
        }
      }),
    );
    found.sort((a, b) => a.mtime - b.mtime || (a.key < b.key ? -1 : 1));
    for (const f of found) {
      // Oldest first; past the capacity, the oldest give way (a smaller capacity than last time).
      const evicted = this.lru.put(f.key, true, f.bytes);
      if (evicted) this.drop(evicted.map((e) => e.key));
      else this.removeFile(f.key);
    }
    this.recovered = this.lru.size;
  }

  has(key: ChunkKey): boolean {
    return this.lru.has(key);
  }

  pathOf(key: ChunkKey): string {
    if (!isChunkKey(key)) throw new TypeError(`not a chunk key: ${JSON.stringify(key)}`);
    return path.join(this.dir, `${key}.kvc`);
  }

  /**
   * Loads the chunk into dst, verified. A file that fails verification is removed (it
   * would fail every time); one that vanished leaves the index.
   */
  async load(key: ChunkKey, dst: ChunkBlocks): Promise<IoReport> {
    if (!this.lru.get(key)) throw Object.assign(new Error(`disk ${key.slice(0, 12)}: missing: not on disk`), { fault: 'missing' });
    this.lru.pin(key);
    try {
      return await this.io.readFile(dst, this.pathOf(key), this.spec, key);
    } catch (err) {
      const fault = faultOf(err);
      if (fault === 'missing') this.lru.delete(key);
      else if (fault !== 'io') this.remove(key);
      throw err;
    } finally {
      this.lru.unpin(key);
    }
  }

  /** Reads and verifies the chunk's file into memory (promotion to the memory tier). */
  async readValue(key: ChunkKey): Promise<ValueReport> {
    if (!this.lru.has(key)) throw Object.assign(new Error(`disk ${key.slice(0, 12)}: missing: not on disk`), { fault: 'missing' });
    this.lru.pin(key);
    try {
      return await this.io.readValue(this.pathOf(key), this.spec, key);
    } finally {
      this.lru.unpin(key);
    }
  }

  /**
   * Writes the chunk from src (after waitFor). 'present' when a file is already there,
   * 'rejected' when it cannot fit; rejects with the native error when the write fails.
   */
  async save(key: ChunkKey, src: ChunkBlocks, waitFor?: WaitList): Promise<'stored' | 'present' | 'rejected'> {
    if (this.lru.has(key)) return 'present';
    return this.write(key, () => this.io.writeFile(src, this.dir, this.spec, key, { waitFor }));
  }

  /** Writes a verified chunk value (promotion from Redis). */
  async saveValue(key: ChunkKey, value: readonly Uint8Array[]): Promise<'stored' | 'present' | 'rejected'> {
    if (this.lru.has(key)) return 'present';
    return this.write(key, () => this.io.writeValue(this.dir, value, this.spec, key));
  }

  private async write(key: ChunkKey, issue: () => Promise<IoReport>): Promise<'stored' | 'rejected'> {
    await this.removals.get(key);
    const bytes = this.spec.valueBytes;
    const evicted = this.lru.reserve(bytes);
    if (!evicted) {
      this.rejected++;
      return 'rejected';
    }
    this.drop(evicted.map((e) => e.key));
    try {
      await issue();
    } catch (err) {
      this.lru.unreserve(bytes);
      throw err;
    }
    this.lru.insertReserved(key, true, bytes);
    return 'stored';
  }

  /** Removes a chunk (its file and index entry). */
  remove(key: ChunkKey): void {
    this.lru.delete(key);
    this.removeFile(key);
  }

  private drop(keys: ChunkKey[]): void {
    this.evictions += keys.length;
    for (const k of keys) this.removeFile(k);
  }

  private removeFile(key: ChunkKey): void {
    const before = this.removals.get(key) ?? Promise.resolve();
    const p: Promise<void> = before
      .then(() => unlink(this.pathOf(key)))
      .catch(() => {})
      .finally(() => {
        if (this.removals.get(key) === p) this.removals.delete(key);
      });
    this.removals.set(key, p);
  }

  keys(): ChunkKey[] {
    return this.lru.keys();
  }

  async settle(): Promise<void> {
    while (this.removals.size > 0) await Promise.all([...this.removals.values()]);
  }

  stats(): DiskTierStats {
    return {
      dir: this.dir,
      chunks: this.lru.size,
      bytes: this.lru.bytes,
      capacityBytes: this.lru.capacityBytes,
      evictions: this.evictions,
      rejected: this.rejected,
      recovered: this.recovered,
      staleTempFiles: this.staleTemps,
    };
  }
}
