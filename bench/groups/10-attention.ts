// Decode attention effective bandwidth (KV bytes read / time) beside a memcpy of the same
// bytes on the same backend, measured in the same run: a device -> device copyBlocks of
// identity pairs (contiguous runs; a memcpy on the CPU backend, cudaMemcpy-class on CUDA).
// Decode is memory bound, so the ratio says how close the kernel gets to streaming speed.
// memcpy bandwidth counts bytes copied (each is read once and written once).
// Default suite: contexts 4K and 16K, batch 1 and 8, 8 KV heads x 128, GQA 4, fp16, plus
// bf16 and fp32 at one point. --full: contexts 1K..32K, batch 1..32, 8 and 32 KV heads,
// fp16/bf16/fp32 (points over 4 GiB of KV are skipped).
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createBackend, type Backend, type BackendKind, type DType, type KVPool, type Work } from '../../lib/index.js';

export interface Timing {
  /** Median seconds per op. */
  median: number;
  reps: number;
}

/**
 * Median time of `issue()` (one op, awaited) after warmup: at least minReps runs and
 * about minSeconds in total, at most maxReps. An op slower than a second gets one warmup
 * and the minimum reps, so a slow point cannot stall the suite.
 */
export async function measure(issue: () => Work<unknown>, o: { warmup?: number; minReps?: number; maxReps?: number; minSeconds?: number } = {}): Promise<Timing> {
  const { warmup = 2, minReps = 5, maxReps = 50, minSeconds = 0.3 } = o;
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
  times.sort((a, b) => a - b);
  return { median: times[times.length >> 1], reps: times.length };
}

export function openBench(ctx: BenchContext): Backend {
  return createBackend({ backend: ctx.backend as BackendKind });
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
    else if (dtype === 'fp16') data[i] = (x < 0 ? 0x8000 : 0) | (((s >>> 8) & 1) + 11) << 10 | (s & 0x3ff);
    else data[i] = (x < 0 ? 0x8000 : 0) | (((s >>> 8) & 1) + 123) << 7 | (s & 0x7f);
  }
  const works: Work[] = [];
  for (let b = 0; b < pool.numBlocks; b += chunkBlocks) {
    const n = Math.min(chunkBlocks, pool.numBlocks - b);
    works.push(pool.write(n === chunkBlocks ? data : data.subarray(0, n * blockStride), { firstBlock: b }));
  }
  await Promise.all(works);
}

/** Identity pairs (i, i) for i < n: the contiguous reference copy. */
export function identityPairs(n: number): Int32Array {
  const p = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) p[2 * i] = p[2 * i + 1] = i;
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

export const GB = 1e9;

export interface DecodePoint {
  ctxLen: number;
  batch: number;
  numKvHeads: number;
  headDim: number;
  dtype: DType;
  blockSize: number;
  gqa: number;
}

export interface DecodeSetup {
  pool: KVPool;
  kvBytes: number;
  run(): Work;
  release(): void;
}

/** A decode over `batch` sequences of ctxLen tokens; `table` maps sequence b's block j to a pool block. */
export async function setupDecode(be: Backend, p: DecodePoint, order: 'identity' | 'shuffled'): Promise<DecodeSetup> {
  const perSeq = Math.ceil(p.ctxLen / p.blockSize);
  const numBlocks = perSeq * p.batch;
  const pool = be.createPool({ tier: 'device', numBlocks, numKvHeads: p.numKvHeads, headDim: p.headDim, blockSize: p.blockSize, dtype: p.dtype });
  await fillPool(pool);
  const ids = order === 'identity' ? Array.from({ length: numBlocks }, (_, i) => i) : shuffled(numBlocks, 12345);
  const blockTables = Int32Array.from(ids);
  const numHeads = p.numKvHeads * p.gqa;
  const qn = p.batch * numHeads * p.headDim;
  const q = be.tensor({ dtype: p.dtype, shape: [p.batch, numHeads, p.headDim] });
  await q.write(p.dtype === 'fp32' ? new Float32Array(qn).fill(0.01) : new Uint16Array(qn).fill(p.dtype === 'fp16' ? 0x2000 : 0x3c00));
  const out = be.tensor({ dtype: p.dtype, shape: [p.batch, numHeads, p.headDim] });
  const contextLens = new Int32Array(p.batch).fill(p.ctxLen);
  const bytes = p.dtype === 'fp32' ? 4 : 2;
  return {
    pool,
    kvBytes: p.batch * p.ctxLen * p.numKvHeads * p.headDim * 2 * bytes,
    run: () => be.decode({ pool, q, out, blockTables, tableStride: perSeq, contextLens, numHeads }),
    release: () => {
      pool.release();
      q.release();
      out.release();
    },
  };
}

/**
 * A device -> device copy of the whole of `src` (identity pairs: contiguous runs) into a
 * fresh pool of the same geometry; the memcpy reference for the same bytes.
 */
export function memcpyOp(be: Backend, src: KVPool): { run(): Work; release(): void } {
  const l = src.layout;
  const dst = be.createPool({ tier: 'device', numBlocks: l.numBlocks, numKvHeads: l.numKvHeads, headDim: l.headDim, blockSize: l.blockSize, dtype: l.dtype });
  const pairs = identityPairs(l.numBlocks);
  return { run: () => be.copyBlocks(src, dst, pairs), release: () => dst.release() };
}

/** Best of `rounds` medians for each op, measured alternately so drift on a shared machine hits all alike. */
export async function alternate(ops: (() => Work<unknown>)[], rounds = 2): Promise<number[]> {
  const best = ops.map(() => Infinity);
  for (let r = 0; r < rounds; r++)
    for (const [i, op] of ops.entries()) best[i] = Math.min(best[i], (await measure(op, { minSeconds: 0.2 })).median);
  return best;
}

function points(full: boolean): DecodePoint[] {
  const base = { headDim: 128, blockSize: 16, gqa: 4 };
  const out: DecodePoint[] = [];
  if (!full) {
    for (const ctxLen of [4096, 16384]) for (const batch of [1, 8]) out.push({ ...base, ctxLen, batch, numKvHeads: 8, dtype: 'fp16' });
    out.push({ ...base, ctxLen: 4096, batch: 8, numKvHeads: 8, dtype: 'bf16' });
    out.push({ ...base, ctxLen: 4096, batch: 8, numKvHeads: 8, dtype: 'fp32' });
    return out;
  }
  for (const dtype of ['fp16', 'bf16', 'fp32'] as DType[])
    for (const numKvHeads of [8, 32])
      for (const ctxLen of [1024, 2048, 4096, 8192, 16384, 32768])
        for (const batch of [1, 4, 8, 16, 32]) {
          const kv = batch * ctxLen * numKvHeads * 128 * 2 * (dtype === 'fp32' ? 4 : 2);
          if (kv <= 4 * 2 ** 30) out.push({ ...base, ctxLen, batch, numKvHeads, dtype });
        }
  return out;
}

export const group: BenchGroup = {
  name: 'attention',
  title: 'Decode attention bandwidth vs memcpy',
  estimate: '45 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = openBench(ctx);
    ctx.progress(`backend ${be.name} (${be.deviceName})`);
    const rows: Record<string, unknown>[] = [];
    let worst = Infinity;
    for (const p of points(ctx.full)) {
      ctx.progress(`decode ctx ${p.ctxLen} batch ${p.batch} kvHeads ${p.numKvHeads} ${p.dtype}`);
      const s = await setupDecode(be, p, 'shuffled');
      const m = memcpyOp(be, s.pool);
      try {
        const [tDecode, tCopy] = await alternate([s.run, m.run]);
        const memcpy = s.pool.bytes / tCopy;
        const bw = s.kvBytes / tDecode;
        const ratio = bw / memcpy;
        if (p.ctxLen >= 4096 && p.dtype === 'fp16') worst = Math.min(worst, ratio);
        rows.push({
          ctx: p.ctxLen,
          batch: p.batch,
          kvHeads: p.numKvHeads,
          heads: p.numKvHeads * p.gqa,
          dtype: p.dtype,
          'KV MiB': s.kvBytes / 2 ** 20,
          'ms': tDecode * 1e3,
          'decode GB/s': bw / GB,
          'memcpy GB/s': memcpy / GB,
          ratio,
        });
      } finally {
        s.release();
        m.release();
      }
    }
    ctx.table(`decode attention on ${be.name} (${be.deviceName}), headDim 128, blockSize 16, shuffled block tables`, rows);

    // Fixed cost of one op as a serving loop sees it: issue, queue, complete, settle the
    // Promise on the JS thread. A one-block copy and a zero-length decode carry no work.
    const tiny = be.createPool({ tier: 'device', numBlocks: 2, numKvHeads: 1, headDim: 64, blockSize: 8, dtype: 'fp16' });
    const tq = be.tensor({ dtype: 'fp16', shape: [1, 1, 64] });
    const to = be.tensor({ dtype: 'fp16', shape: [1, 1, 64] });
    const one = new Int32Array([0, 1]);
    const empty = { pool: tiny, q: tq, out: to, blockTables: new Int32Array(1), tableStride: 1, contextLens: new Int32Array([0]), numHeads: 1 };
    const [tCopy1, tDecode0] = await alternate([() => be.copyBlocks(tiny, tiny, one), () => be.decode(empty)]);
    for (const x of [tiny, tq, to]) x.release();
    ctx.table('per-op round trip (issue -> Promise settled)', [
      { op: 'copyBlocks, one 2 KiB block', 'µs': tCopy1 * 1e6 },
      { op: 'decode, one empty sequence', 'µs': tDecode0 * 1e6 },
    ]);
    ctx.record('backend', { name: be.name, device: be.deviceName });
    return [
      { metric: `per-op round trip, empty decode (${be.name})`, value: `${(tDecode0 * 1e6).toFixed(0)} µs` },
      {
        metric: `decode bandwidth / memcpy, fp16, ctx >= 4K (worst point, ${be.name})`,
        value: `${worst.toFixed(2)}x`,
        target: '>= 0.8x memcpy',
        met: worst >= 0.8,
      },
    ];
  },
};
