// Shared by the native kernel groups (attention, paging, copy): timing in samples with their
// spread, cold pools, decode setups and the references a kernel is compared with.
//
// Cold pools: every timed op touches a replica of its bytes that the previous few ops did
// not, and the replicas together are at least four times the last-level cache, so a small
// point (one 4K sequence is 16 MiB) is read from memory as a large one is, and so are its
// references.
import { existsSync, readFileSync } from 'node:fs';
import type { BenchContext } from './harness.js';
import { createBackend, type Backend, type BackendKind, type DType, type KVPool, type Work } from '../lib/index.js';

export const GB = 1e9;

export function openBench(ctx: BenchContext): Backend {
  return createBackend({ backend: ctx.backend as BackendKind });
}

/** One line for a table title: backend, device and, on the CPU, the ISA level that ran. */
export function describeBackend(be: Backend, kernel?: string): string {
  const info = be.info();
  if (info.backend !== 'cpu') return `${be.name} (${be.deviceName})`;
  const path = kernel && info.kernels?.[kernel] ? `, ${kernel} path ${info.kernels[kernel]}` : '';
  return `cpu (${be.deviceName}, ISA ${info.isa}${path})`;
}

/** Largest cache of cpu0 at `level` (any level for 0) in bytes, from Linux sysfs; 0 if unknown. */
function cacheBytes(level: number): number {
  let best = 0;
  for (let i = 0; i < 8; i++) {
    const dir = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
    if (!existsSync(`${dir}/size`) || !existsSync(`${dir}/level`)) continue;
    if (level && Number(readFileSync(`${dir}/level`, 'utf8').trim()) !== level) continue;
    const m = readFileSync(`${dir}/size`, 'utf8').trim().match(/^(\d+)([KMG]?)$/);
    if (!m) continue;
    const v = Number(m[1]) * (m[2] === 'K' ? 1024 : m[2] === 'M' ? 2 ** 20 : m[2] === 'G' ? 2 ** 30 : 1);
    best = Math.max(best, v);
  }
  return best;
}

/** Last-level cache size in bytes (Linux sysfs), else 32 MiB. */
export function lastLevelCacheBytes(): number {
  return cacheBytes(0) || 32 * 2 ** 20;
}

/** Per-core L2 size in bytes (Linux sysfs), else 1 MiB. */
export function l2CacheBytes(): number {
  return cacheBytes(2) || 2 ** 20;
}

/**
 * Replicas of `bytes` needed so that together they are >= 4x the last-level cache. One
 * replica of 4x the cache or more is cold for every op; below that, at least three, so that
 * ops taken in turn (sampled) each read a replica the op just before did not.
 */
export function coldReplicas(bytes: number): number {
  const n = Math.ceil((4 * lastLevelCacheBytes()) / bytes);
  return n <= 1 ? 1 : Math.max(3, n);
}

/**
 * Median seconds of one op (awaited) after warmup: at least minReps runs and about
 * minSeconds in total, at most maxReps. An op slower than a second gets one warmup and
 * three reps, so a slow point cannot stall the suite.
 */
export async function measure(issue: () => Work<unknown>, o: { warmup?: number; minReps?: number; maxReps?: number; minSeconds?: number } = {}): Promise<number> {
  const { warmup = 2, minReps = 5, maxReps = 50, minSeconds = 0.1 } = o;
  const w0 = performance.now();
  await issue();
  const slow = performance.now() - w0 > 1000;
  for (let i = 1; i < (slow ? 1 : warmup); i++) await issue();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxReps && (times.length < (slow ? 3 : minReps) || performance.now() - start < minSeconds * 1000)) {
    const t0 = performance.now();
    await issue();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** A figure over samples: its median and range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function spread(samples: number[]): Spread {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

/** "0.84 (0.79-0.88)": median and range, for tables. */
export function fmtSpread(s: Spread, digits = 2, scale = 1, unit = ''): string {
  const f = (x: number) => (x * scale).toFixed(digits);
  return `${f(s.median)}${unit} (${f(s.min)}-${f(s.max)})`;
}

/**
 * `samples` samples of every op, interleaved op by op: within a sample the ops run in turn
 * (forward, then backward, so neither always follows the other) for about minSeconds each,
 * and the sample is each op's median. Drift on a shared machine, slower than one round of
 * ops, then hits every op of a round alike and leaves their ratios; timing each op in its
 * own block of reps let it move one op's sample against another's. Returns per op the
 * seconds of each sample.
 */
export async function sampled(ops: (() => Work<unknown>)[], samples: number, o: Parameters<typeof measure>[1] = {}): Promise<number[][]> {
  const { warmup = 2, minReps = 5, maxReps = 50, minSeconds = 0.1 } = o;
  let slow = false;
  for (const op of ops) {
    const w0 = performance.now();
    await op();
    slow ||= performance.now() - w0 > 1000;
  }
  for (let w = 1; w < (slow ? 1 : warmup); w++) for (const op of ops) await op();
  const forward = ops.map((_, i) => i);
  const backward = [...forward].reverse();
  const out = ops.map(() => [] as number[]);
  for (let s = 0; s < samples; s++) {
    const times = ops.map(() => [] as number[]);
    const start = performance.now();
    for (let round = 0; round < maxReps && (round < (slow ? 3 : minReps) || performance.now() - start < minSeconds * 1000 * ops.length); round++) {
      for (const i of round % 2 ? backward : forward) {
        const t0 = performance.now();
        await ops[i]();
        times[i].push((performance.now() - t0) / 1000);
      }
    }
    for (const [i, t] of times.entries()) out[i].push(median(t));
  }
  return out;
}

/** Fills a pool with small finite values (no NaN/Inf/denormals to skew timing), in chunks. */
export async function fillPool(pool: KVPool): Promise<void> {
  const { blockStride, dtype } = pool.layout;
  const chunkBlocks = Math.max(1, Math.min(pool.numBlocks, Math.floor((32 << 20) / (blockStride * (dtype === 'fp32' ? 4 : 2)))));
  const data = dtype === 'fp32' ? new Float32Array(chunkBlocks * blockStride) : new Uint16Array(chunkBlocks * blockStride);
  let s = 0x9e3779b9;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const x = ((s >>> 0) / 2 ** 32 - 0.5) * 0.5;
    // fp16: sign, exponent 13..14 (0.0625..0.5), random mantissa; bf16: the same range.
    if (dtype === 'fp32') data[i] = x;
    else if (dtype === 'fp16') data[i] = (x < 0 ? 0x8000 : 0) | ((((s >>> 8) & 1) + 11) << 10) | (s & 0x3ff);
    else data[i] = (x < 0 ? 0x8000 : 0) | ((((s >>> 8) & 1) + 123) << 7) | (s & 0x7f);
  }
  const works: Work[] = [];
  for (let b = 0; b < pool.numBlocks; b += chunkBlocks) {
    const n = Math.min(chunkBlocks, pool.numBlocks - b);
    works.push(pool.write(n === chunkBlocks ? data : data.subarray(0, n * blockStride), { firstBlock: b }));
  }
  await Promise.all(works);
}

/** Identity pairs (first + i, first + i) for i < n: contiguous runs. */
export function identityPairs(n: number, first = 0): Int32Array {
  const p = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) p[2 * i] = p[2 * i + 1] = first + i;
  return p;
}

export function shuffled(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export interface DecodePoint {
  ctxLen: number;
  batch: number;
  numKvHeads: number;
  headDim: number;
  dtype: DType;
  blockSize: number;
  gqa: number;
}

/**
 * A cold decode over `batch` sequences of ctxLen tokens: `replicas` copies of the working
 * set in one pool, each run on the next. 'shuffled' scatters every sequence's blocks over
 * the whole pool (allocation churn); 'identity' gives each sequence contiguous blocks in
 * order. The references read or copy one contiguous replica of the same bytes per run.
 */
export interface DecodeSetup {
  pool: KVPool;
  /** KV bytes one decode reads (= one replica). */
  kvBytes: number;
  replicas: number;
  decode(): Work;
  /** Streaming read of the same bytes on the kernels' threads (CPU only). */
  read(): Work<number>;
  /** The same streaming read, block by block in the decode's table order (CPU only): what
   *  the table's order costs a plain read, without a kernel's prefetch. */
  readTable(): Work<number>;
  /** Device -> device copy of the same bytes (a memcpy on the CPU backend). */
  memcpy(): Work;
  /** The same decode with every table entry pointing into blocks that fit in half of one
   *  core's L2: the same work with its reads hot, the kernel's compute ceiling (CPU). */
  hot(): Work;
  release(): void;
}

export async function setupDecode(be: Backend, p: DecodePoint, order: 'identity' | 'shuffled'): Promise<DecodeSetup> {
  const perSeq = Math.ceil(p.ctxLen / p.blockSize);
  const blocks = perSeq * p.batch;
  const bytes = p.dtype === 'fp32' ? 4 : 2;
  const blockBytes = 2 * p.numKvHeads * p.blockSize * p.headDim * bytes;
  const replicas = coldReplicas(blocks * blockBytes);
  const numBlocks = blocks * replicas;
  const geo = { numBlocks, numKvHeads: p.numKvHeads, headDim: p.headDim, blockSize: p.blockSize, dtype: p.dtype };
  const pool = be.createPool({ tier: 'device', ...geo });
  const dst = be.createPool({ tier: 'device', ...geo });
  await fillPool(pool);
  const ids = order === 'identity' ? Array.from({ length: numBlocks }, (_, i) => i) : shuffled(numBlocks, 12345);
  const tables = Array.from({ length: replicas }, (_, r) => Int32Array.from(ids.slice(r * blocks, (r + 1) * blocks)));
  const contiguous = Array.from({ length: replicas }, (_, r) => Int32Array.from({ length: blocks }, (_, i) => r * blocks + i));
  const pairs = Array.from({ length: replicas }, (_, r) => identityPairs(blocks, r * blocks));
  const hotBlocks = Math.max(1, Math.min(blocks, Math.floor(l2CacheBytes() / 2 / blockBytes)));
  const hotTable = Int32Array.from({ length: blocks }, (_, i) => ids[i % hotBlocks]);
  const numHeads = p.numKvHeads * p.gqa;
  const qn = p.batch * numHeads * p.headDim;
  const q = be.tensor({ dtype: p.dtype, shape: [p.batch, numHeads, p.headDim] });
  await q.write(p.dtype === 'fp32' ? new Float32Array(qn).fill(0.01) : new Uint16Array(qn).fill(p.dtype === 'fp16' ? 0x2000 : 0x3c00));
  const out = be.tensor({ dtype: p.dtype, shape: [p.batch, numHeads, p.headDim] });
  const contextLens = new Int32Array(p.batch).fill(p.ctxLen);
  // Each op walks the replicas from its own third of them: ops taken in turn then never
  // read a replica another op has just pulled into the cache.
  let rd = 0;
  let rc = Math.floor(replicas / 3);
  let rr = Math.floor((2 * replicas) / 3);
  let rt = Math.floor((2 * replicas) / 3);
  return {
    pool,
    kvBytes: p.batch * p.ctxLen * p.numKvHeads * p.headDim * 2 * bytes,
    replicas,
    decode: () => be.decode({ pool, q, out, blockTables: tables[rd++ % replicas], tableStride: perSeq, contextLens, numHeads }),
    read: () => be.referenceRead(pool, contiguous[rr++ % replicas]),
    readTable: () => be.referenceRead(pool, tables[rt++ % replicas]),
    memcpy: () => be.copyBlocks(pool, dst, pairs[rc++ % replicas]),
    hot: () => be.decode({ pool, q, out, blockTables: hotTable, tableStride: perSeq, contextLens, numHeads }),
    release: () => {
      for (const x of [pool, dst, q, out]) x.release();
    },
  };
}
