// GPU kernels and transfers on the CUDA backend, through the public API (so the numbers
// include staging, stream and event overhead, as a serving loop sees them):
//   - decode attention bandwidth: KV bytes read per second vs the H100's 3.35 TB/s;
//   - prefill attention TFLOP/s for a causal prompt (causal FLOPs: 4 * d * heads * S(S+1)/2);
//   - block copies device -> host, host -> device and both at once, 64 KiB layer-blocks,
//     scattered vs contiguous ids, for each copy method (KVCAKE_CUDA_COPY = batch |
//     memcpy | kernel), so the fastest can be made the default.
// Throughput is measured by issuing a run of ops without waiting and awaiting the last
// (ops on one queue run in order), after a warm-up.
// Without a usable CUDA device the group reports why and returns at once.
// Default suite: one decode shape, one prefill shape, transfers at 128 MiB (~20 s on a GPU).
// --full adds more decode/prefill shapes.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createBackend, cudaInfo, type Backend, type KVPool, type Work } from '../../lib/index.js';

const PEAK_HBM_GBPS = 3350;
const PEAK_TFLOPS = 989;

async function timeRun(n: number, issue: () => Work<unknown>): Promise<number> {
  await issue();
  await issue();
  const t0 = performance.now();
  let last: Work<unknown> | undefined;
  for (let i = 0; i < n; i++) last = issue();
  await last;
  return (performance.now() - t0) / 1000 / n;
}

function randomBf16(n: number, seed: number): Uint16Array {
  // Small values (|x| < 0.5) as bf16 bit patterns: the top 16 bits of an fp32.
  const out = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[0] = ((s >>> 0) / 2 ** 32 - 0.5);
    out[i] = u[0] >>> 16;
  }
  return out;
}

async function decodeCase(be: Backend, batch: number, ctxLen: number, kvHeads: number, heads: number, headDim: number) {
  const blockSize = 16;
  const per = Math.ceil(ctxLen / blockSize);
  const pool = be.createPool({ tier: 'device', numBlocks: batch * per, numKvHeads: kvHeads, headDim, blockSize, dtype: 'bf16' });
  // Scattered block ids, as a long-running pool has them.
  const ids = Int32Array.from({ length: batch * per }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = (i * 2654435761) % (i + 1);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const q = be.tensorFrom(randomBf16(batch * heads * headDim, 7), 'bf16', [batch, heads, headDim]);
  const out = be.tensor({ dtype: 'bf16', shape: [batch, heads, headDim] });
  const contextLens = new Int32Array(batch).fill(ctxLen);
  const sec = await timeRun(20, () =>
    be.decode({ pool, q, out, blockTables: ids, tableStride: per, contextLens, numHeads: heads }),
  );
  const bytes = batch * ctxLen * kvHeads * headDim * 2 * 2;
  pool.release();
  q.release();
  out.release();
  const gbps = bytes / sec / 1e9;
  return { batch, ctx: ctxLen, kvHeads, heads, headDim, ms: sec * 1e3, GBps: gbps, ofPeak: gbps / PEAK_HBM_GBPS };
}

async function prefillCase(be: Backend, S: number, heads: number, kvHeads: number, headDim: number) {
  const blockSize = 16;
  const nb = Math.ceil(S / blockSize);
  const pool = be.createPool({ tier: 'device', numBlocks: nb, numKvHeads: kvHeads, headDim, blockSize, dtype: 'bf16' });
  const k = randomBf16(S * kvHeads * headDim, 3);
  const v = randomBf16(S * kvHeads * headDim, 4);
  await be.appendKV({ pool, k, v, slotMapping: Int32Array.from({ length: S }, (_, i) => i) });
  const q = be.tensorFrom(randomBf16(S * heads * headDim, 5), 'bf16', [S, heads, headDim]);
  const out = be.tensor({ dtype: 'bf16', shape: [S, heads, headDim] });
  const blockTables = Int32Array.from({ length: nb }, (_, i) => i);
  const sec = await timeRun(5, () =>
    be.prefill({ pool, q, out, blockTables, tableStride: nb, contextLens: Int32Array.of(S), qStartLoc: Int32Array.of(0, S), numHeads: heads }),
  );
  pool.release();
  q.release();
  out.release();
  const tflops = (4 * headDim * heads * (S * (S + 1)) / 2) / sec / 1e12;
  return { tokens: S, heads, kvHeads, headDim, ms: sec * 1e3, TFLOPs: tflops, ofPeak: tflops / PEAK_TFLOPS };
}

function pairsFor(n: number, scattered: boolean): Int32Array {
  const p = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    p[2 * i] = i;
    p[2 * i + 1] = scattered ? (i * 7919) % n : i; // 7919 is prime, coprime with n = 2^k
  }
  return p;
}

async function transferCases(be: Backend, ctx: BenchContext, blocks: number) {
  // 64 KiB layer-blocks (2 x 8 heads x 16 tokens x 128 x bf16), as in the decode case.
  const geo = { numBlocks: blocks, numKvHeads: 8, headDim: 128, blockSize: 16, dtype: 'bf16' as const };
  const dev = be.createPool({ tier: 'device', ...geo });
  const dev2 = be.createPool({ tier: 'device', ...geo });
  const host = be.createPool({ tier: 'host', ...geo });
  const host2 = be.createPool({ tier: 'host', ...geo });
  const bytes = dev.bytes;
  const rows: Record<string, unknown>[] = [];
  const prev = process.env.KVCAKE_CUDA_COPY;
  const best: Record<string, { GBps: number; method: string }> = {};
  try {
    for (const method of ['batch', 'memcpy', 'kernel']) {
      process.env.KVCAKE_CUDA_COPY = method;
      for (const scattered of [false, true]) {
        const pairs = pairsFor(blocks, scattered);
        const d2h = await timeRun(3, () => be.copyBlocks(dev, host, pairs));
        const h2d = await timeRun(3, () => be.copyBlocks(host2, dev2, pairs));
        const both = await timeRun(3, () => {
          const a = be.copyBlocks(dev, host, pairs);
          const b = be.copyBlocks(host2, dev2, pairs);
          return Promise.all([a, b]) as unknown as Work<unknown>;
        });
        const row = {
          method,
          blocks: scattered ? 'scattered' : 'contiguous',
          MiB: bytes / 2 ** 20,
          d2hGBps: bytes / d2h / 1e9,
          h2dGBps: bytes / h2d / 1e9,
          bothGBps: (2 * bytes) / both / 1e9,
        };
        rows.push(row);
        if (scattered) {
          for (const k of ['d2hGBps', 'h2dGBps', 'bothGBps'] as const) {
            if (!best[k] || row[k] > best[k].GBps) best[k] = { GBps: row[k], method };
          }
        }
        ctx.progress(`copy ${method} ${row.blocks}: d2h ${row.d2hGBps.toFixed(1)} h2d ${row.h2dGBps.toFixed(1)} GB/s`);
      }
    }
  } finally {
    if (prev === undefined) delete process.env.KVCAKE_CUDA_COPY;
    else process.env.KVCAKE_CUDA_COPY = prev;
    for (const p of [dev, dev2, host, host2] as KVPool[]) p.release();
  }
  return { rows, best };
}

export const group: BenchGroup = {
  name: 'gpu',
  title: 'GPU: decode bandwidth, prefill TFLOP/s, block transfers (CUDA backend)',
  estimate: '20 s on a GPU, instant without one',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const info = cudaInfo();
    if (!info.usable || ctx.backend === 'cpu') {
      const why = !info.usable ? info.reason : 'backend cpu selected (use --backend cuda)';
      ctx.record('skipped', why);
      return [{ metric: 'skipped', value: why }];
    }
    const be = createBackend({ backend: 'cuda' });
    ctx.record('device', be.deviceName);
    ctx.progress(`device ${be.deviceName}`);

    const decodeShapes: [number, number, number, number, number][] = [[32, 8192, 8, 32, 128]];
    if (ctx.full) decodeShapes.push([32, 8192, 8, 64, 128], [256, 2048, 8, 32, 128], [1, 65536, 8, 32, 128], [64, 4096, 32, 32, 128]);
    const dec = [];
    for (const s of decodeShapes) dec.push(await decodeCase(be, ...s));
    ctx.table('decode attention (bf16, block size 16, scattered blocks)', dec);

    const prefillShapes: [number, number, number, number][] = [[8192, 32, 8, 128]];
    if (ctx.full) prefillShapes.push([8192, 32, 32, 128], [4096, 16, 16, 64], [16384, 32, 8, 128]);
    const pre = [];
    for (const s of prefillShapes) pre.push(await prefillCase(be, ...s));
    ctx.table('prefill attention (bf16, causal, one sequence)', pre);

    const tr = await transferCases(be, ctx, 2048);
    ctx.table('copyBlocks, 2048 layer-blocks of 64 KiB (128 MiB), per method', tr.rows);

    const d0 = dec[0];
    const p0 = pre[0];
    return [
      {
        metric: 'decode 32x8K bf16 KV read',
        value: `${d0.GBps.toFixed(0)} GB/s (${d0.ofPeak.toFixed(2)} of peak)`,
        target: '>= 0.85 of 3.35 TB/s',
        met: d0.ofPeak >= 0.85,
      },
      {
        metric: 'prefill 8K causal bf16',
        value: `${p0.TFLOPs.toFixed(0)} TFLOP/s (${p0.ofPeak.toFixed(2)} of peak)`,
        target: '>= 0.5 of 989 TFLOP/s',
        met: p0.ofPeak >= 0.5,
      },
      { metric: 'offload d2h scattered', value: `${tr.best.d2hGBps.GBps.toFixed(1)} GB/s (${tr.best.d2hGBps.method})` },
      { metric: 'load h2d scattered', value: `${tr.best.h2dGBps.GBps.toFixed(1)} GB/s (${tr.best.h2dGBps.method})` },
      { metric: 'both directions', value: `${tr.best.bothGBps.GBps.toFixed(1)} GB/s (${tr.best.bothGBps.method})` },
    ];
  },
};
