// Decode attention effective bandwidth (KV bytes read / time) beside two references for
// the same bytes, measured in the same run on the same threads and equally cold (bench/native.ts):
//   - memcpy: a device -> device copyBlocks of one contiguous replica (a memcpy on the CPU
//     backend, cudaMemcpy-class on CUDA); GB/s counts bytes copied, each read once and
//     written once;
//   - read: a streaming read of one contiguous replica by the kernels' threads (CPU only);
//   - hot: the same decode with its table pointing into blocks that stay in L2 (CPU only),
//     the kernel's compute ceiling on this machine.
// Decode is memory bound when it keeps up with the read, compute bound when it keeps up with
// hot; where hot itself is below 0.7x the read, no prefetch brings that point to the target.
// Each figure is the median of several samples with their range, the ops of a sample taken
// in turn.
// Prefill attention (causal prompt and a chunk) in GFLOP/s beside the FMA peak of the
// same threads at the level the kernels run.
// Default suite: 8 KV heads x 128, GQA 4, block 16, shuffled tables; fp16 at ctx 4K
// (batch 1/8/32) and 16K (batch 1/8), bf16 at 4K (batch 1/8/32), fp32 at one point.
// --full: contexts 1K..32K, batch 1..32, 8 and 32 KV heads, fp16/bf16/fp32 (points over
// 4 GiB of KV are skipped) and more prefill shapes.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import type { Backend, DType } from '../../lib/index.js';
import { GB, describeBackend, fillPool, fmtSpread, measure, openBench, sampled, setupDecode, shuffled, spread, type DecodePoint, type Spread } from '../native.js';

function points(full: boolean): DecodePoint[] {
  const base = { headDim: 128, blockSize: 16, gqa: 4, numKvHeads: 8 };
  const out: DecodePoint[] = [];
  if (!full) {
    for (const batch of [1, 8, 32]) out.push({ ...base, ctxLen: 4096, batch, dtype: 'fp16' });
    for (const batch of [1, 8]) out.push({ ...base, ctxLen: 16384, batch, dtype: 'fp16' });
    for (const batch of [1, 8, 32]) out.push({ ...base, ctxLen: 4096, batch, dtype: 'bf16' });
    out.push({ ...base, ctxLen: 4096, batch: 8, dtype: 'fp32' });
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

interface PrefillPoint {
  dtype: DType;
  ctxLen: number;
  qLen: number;
}

/** Causal prefill over one sequence: the chunk is the last qLen of ctxLen positions. */
async function prefillCase(be: Backend, p: PrefillPoint, samples: number, peak: () => Promise<number>) {
  const numKvHeads = 8, numHeads = 32, headDim = 128, blockSize = 16;
  const perSeq = Math.ceil(p.ctxLen / blockSize);
  const pool = be.createPool({ tier: 'device', numBlocks: perSeq, numKvHeads, headDim, blockSize, dtype: p.dtype });
  await fillPool(pool);
  const n = p.qLen * numHeads * headDim;
  const q = be.tensorFrom(p.dtype === 'fp32' ? new Float32Array(n).fill(0.01) : new Uint16Array(n).fill(p.dtype === 'fp16' ? 0x2000 : 0x3c00), p.dtype, [p.qLen, numHeads, headDim]);
  const out = be.tensor({ dtype: p.dtype, shape: [p.qLen, numHeads, headDim] });
  const args = {
    pool, q, out, numHeads, tableStride: perSeq,
    blockTables: Int32Array.from(shuffled(perSeq, 7)),
    contextLens: Int32Array.from([p.ctxLen]),
    qStartLoc: Int32Array.from([0, p.qLen]),
  };
  let pairs = 0;
  for (let i = 0; i < p.qLen; i++) pairs += p.ctxLen - p.qLen + i + 1;
  const flops = 4 * headDim * numHeads * pairs;
  try {
    const gflops: number[] = [];
    const frac: number[] = [];
    for (let s = 0; s < samples; s++) {
      const t = await measure(() => be.prefill(args), { minReps: 3, minSeconds: 0.2 });
      const pk = await peak();
      gflops.push(flops / t / 1e9);
      frac.push(flops / t / pk);
    }
    return { gflops: spread(gflops), frac: spread(frac) };
  } finally {
    for (const x of [pool, q, out]) x.release();
  }
}

export const group: BenchGroup = {
  name: 'attention',
  title: 'Decode attention bandwidth vs memcpy and a streaming read; prefill vs the FMA peak',
  estimate: '90 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = openBench(ctx);
    const info = be.info();
    const cpu = info.backend === 'cpu';
    const samples = ctx.full ? 7 : 5;
    ctx.progress(`backend ${describeBackend(be)}${cpu ? `; kernels ${JSON.stringify(info.kernels)}` : ''}`);
    ctx.record('backend', info);
    const rows: Record<string, unknown>[] = [];
    let worstMemcpy: { s: Spread; at: string } | undefined;
    let worstRead: { s: Spread; at: string; hotRead: Spread; decodeHot: Spread } | undefined;
    const lowestSample = { memcpy: Infinity, read: Infinity };
    for (const p of points(ctx.full)) {
      ctx.progress(`decode ctx ${p.ctxLen} batch ${p.batch} kvHeads ${p.numKvHeads} ${p.dtype}`);
      const s = await setupDecode(be, p, 'shuffled');
      try {
        const ops = cpu ? [s.decode, s.memcpy, s.read, s.hot] : [s.decode, s.memcpy];
        const t = await sampled(ops, samples);
        const bw = spread(t[0].map((x) => s.kvBytes / x / GB));
        const mem = spread(t[1].map((x) => s.kvBytes / x / GB));
        const rMem = spread(t[0].map((x, i) => t[1][i] / x));
        const rd = cpu ? spread(t[2].map((x) => s.kvBytes / x / GB)) : undefined;
        const rRead = cpu ? spread(t[0].map((x, i) => t[2][i] / x)) : undefined;
        const hot = cpu ? spread(t[3].map((x) => s.kvBytes / x / GB)) : undefined;
        const rHot = cpu ? spread(t[0].map((x, i) => t[3][i] / x)) : undefined;
        const hotRead = cpu ? spread(t[3].map((x, i) => t[2][i] / x)) : undefined;
        const at = `${p.dtype} ctx ${p.ctxLen} batch ${p.batch}`;
        if (p.ctxLen >= 4096 && p.dtype !== 'fp32' && p.numKvHeads === 8) {
          if (!worstMemcpy || rMem.median < worstMemcpy.s.median) worstMemcpy = { s: rMem, at };
          lowestSample.memcpy = Math.min(lowestSample.memcpy, rMem.min);
          if (rRead && rHot && hotRead) {
            if (!worstRead || rRead.median < worstRead.s.median) worstRead = { s: rRead, at, hotRead, decodeHot: rHot };
            lowestSample.read = Math.min(lowestSample.read, rRead.min);
          }
        }
        rows.push({
          ctx: p.ctxLen,
          batch: p.batch,
          kvHeads: p.numKvHeads,
          heads: p.numKvHeads * p.gqa,
          dtype: p.dtype,
          path: info.kernels?.[`decode.${p.dtype}`] ?? be.name,
          'KV MiB': s.kvBytes / 2 ** 20,
          replicas: s.replicas,
          'decode GB/s': fmtSpread(bw, 1),
          'memcpy GB/s': fmtSpread(mem, 1),
          '/memcpy': fmtSpread(rMem),
          ...(rd && rRead ? { 'read GB/s': fmtSpread(rd, 1), '/read': fmtSpread(rRead) } : {}),
          ...(hot && rHot && hotRead ? { 'hot GB/s': fmtSpread(hot, 1), '/hot': fmtSpread(rHot), 'hot/read': fmtSpread(hotRead) } : {}),
        });
      } finally {
        s.release();
      }
    }
    ctx.table(
      `decode attention on ${describeBackend(be)}, headDim 128, blockSize 16, shuffled block tables, cold pools` +
        `${cpu ? ` (hot: the same op on blocks in half of L2)` : ''}; ` +
        `median (min-max) of ${samples} samples`,
      rows,
    );

    const heads: Headline[] = [];
    if (worstMemcpy)
      heads.push({
        metric: `decode / memcpy, fp16+bf16, ctx >= 4K, batch 1-32 (worst point ${worstMemcpy.at}, ${describeBackend(be)})`,
        value: `${fmtSpread(worstMemcpy.s)}x; lowest sample ${lowestSample.memcpy.toFixed(2)}x`,
        target: '>= 0.8x memcpy',
        met: worstMemcpy.s.median >= 0.8,
      });
    if (worstRead)
      heads.push({
        metric: `decode / streaming read, fp16+bf16, ctx >= 4K, batch 1-32 (worst point ${worstRead.at})`,
        value: `${fmtSpread(worstRead.s)}x; lowest sample ${lowestSample.read.toFixed(2)}x`,
        target: '>= 0.7x read',
        met: worstRead.s.median >= 0.7,
      });
    if (worstRead)
      heads.push({
        metric: `the same point: decode / hot (L2-resident blocks) and hot / read, the compute ceiling against the read`,
        value: `${fmtSpread(worstRead.decodeHot)}x; ${fmtSpread(worstRead.hotRead)}x`,
      });

    if (cpu) {
      // FMA peak of the same threads, about 50 ms per measurement.
      const calib = 1e6;
      const t0 = performance.now();
      const f0 = await be.referenceFma(calib);
      const iters = Math.max(calib, Math.round((calib * 50) / Math.max(1, performance.now() - t0)));
      const peak = async () => {
        const t = await measure(() => be.referenceFma(iters), { warmup: 1, minReps: 3, minSeconds: 0 });
        return (f0 / calib) * iters / t;
      };
      const prows: Record<string, unknown>[] = [];
      const pts: PrefillPoint[] = [
        { dtype: 'fp16', ctxLen: 2048, qLen: 2048 },
        { dtype: 'bf16', ctxLen: 2048, qLen: 2048 },
        { dtype: 'fp16', ctxLen: 4096, qLen: 512 },
      ];
      if (ctx.full) pts.push({ dtype: 'fp16', ctxLen: 8192, qLen: 8192 }, { dtype: 'fp32', ctxLen: 2048, qLen: 2048 });
      let worstFrac = Infinity;
      let peakSeen: Spread | undefined;
      for (const p of pts) {
        ctx.progress(`prefill ${p.dtype} ctx ${p.ctxLen} chunk ${p.qLen}`);
        const peaks: number[] = [];
        const r = await prefillCase(be, p, ctx.full ? 5 : 3, async () => {
          const x = await peak();
          peaks.push(x);
          return x;
        });
        peakSeen = spread(peaks.map((x) => x / 1e9));
        worstFrac = Math.min(worstFrac, r.frac.median);
        prows.push({
          dtype: p.dtype,
          path: info.kernels?.[`prefill.${p.dtype}`],
          ctx: p.ctxLen,
          chunk: p.qLen,
          'GFLOP/s': fmtSpread(r.gflops, 1),
          'FMA peak GFLOP/s': fmtSpread(peakSeen, 1),
          '/peak': fmtSpread(r.frac),
        });
      }
      ctx.table(
        `prefill attention (causal, 8 KV heads x 128, 32 heads, block 16) on ${describeBackend(be)}; FMA peak at the ` +
          `${info.kernels?.reference} level on ${info.threads} threads`,
        prows,
      );
      heads.push({ metric: `prefill attention / FMA peak (worst point, ${describeBackend(be)})`, value: `${worstFrac.toFixed(2)}x of ${peakSeen ? peakSeen.median.toFixed(0) : '?'} GFLOP/s` });
    }

    // Fixed cost of one op as a serving loop sees it: issue, queue, complete, settle the
    // Promise on the JS thread. A one-block copy and a zero-length decode carry no work.
    const tiny = be.createPool({ tier: 'device', numBlocks: 2, numKvHeads: 1, headDim: 64, blockSize: 8, dtype: 'fp16' });
    const tq = be.tensor({ dtype: 'fp16', shape: [1, 1, 64] });
    const to = be.tensor({ dtype: 'fp16', shape: [1, 1, 64] });
    const one = new Int32Array([0, 1]);
    const empty = { pool: tiny, q: tq, out: to, blockTables: new Int32Array(1), tableStride: 1, contextLens: new Int32Array([0]), numHeads: 1 };
    const [tCopy1, tDecode0] = (await sampled([() => be.copyBlocks(tiny, tiny, one), () => be.decode(empty)], 3)).map((x) => spread(x));
    for (const x of [tiny, tq, to]) x.release();
    ctx.table('per-op round trip (issue -> Promise settled), median (min-max)', [
      { op: 'copyBlocks, one 2 KiB block', 'µs': fmtSpread(tCopy1, 0, 1e6) },
      { op: 'decode, one empty sequence', 'µs': fmtSpread(tDecode0, 0, 1e6) },
    ]);
    heads.unshift({ metric: `per-op round trip, empty decode (${be.name})`, value: `${(tDecode0.median * 1e6).toFixed(0)} µs` });
    return heads;
  },
};
