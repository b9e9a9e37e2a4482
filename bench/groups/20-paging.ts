// Paging overhead of decode attention: the same KV bytes read through a shuffled block
// table (every sequence's blocks scattered over the pool, as after allocation churn) vs an
// identity table (each sequence's blocks contiguous and in order), both on cold pools
// (bench/native.ts). Overhead = t_shuffled / t_identity - 1, per sample; the table shows the
// median and range over the samples of this run. Beside it, the same ratio for a plain
// streaming read of the blocks in each table's order: what the scattered table costs the
// memory system itself, with no kernel's prefetch to hide the jumps.
// Default suite: ctx 8K, batch 4, 8 KV heads x 128, fp16, block sizes 16 and 64.
// --full: block sizes 8..256 and two more shapes.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import type { DType } from '../../lib/index.js';
import { GB, describeBackend, fmtSpread, openBench, sampled, setupDecode, spread, type DecodePoint, type Spread } from '../native.js';

function points(full: boolean): DecodePoint[] {
  const base = { headDim: 128, gqa: 4, numKvHeads: 8, dtype: 'fp16' as DType };
  if (!full) return [16, 64].map((blockSize) => ({ ...base, ctxLen: 8192, batch: 4, blockSize }));
  const out: DecodePoint[] = [];
  for (const blockSize of [8, 16, 32, 64, 128, 256]) out.push({ ...base, ctxLen: 8192, batch: 4, blockSize });
  out.push({ ...base, ctxLen: 32768, batch: 1, blockSize: 16 });
  out.push({ ...base, ctxLen: 4096, batch: 16, blockSize: 16, dtype: 'bf16' });
  return out;
}

export const group: BenchGroup = {
  name: 'paging',
  title: 'Paging overhead: shuffled vs contiguous block tables',
  estimate: '30 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = openBench(ctx);
    const samples = ctx.full ? 11 : 9;
    // The reference read is the CPU backend's.
    const cpu = be.info().backend === 'cpu';
    const rows: Record<string, unknown>[] = [];
    let worst: { s: Spread; blockSize: number } | undefined;
    for (const p of points(ctx.full)) {
      ctx.progress(`paging ctx ${p.ctxLen} batch ${p.batch} blockSize ${p.blockSize} ${p.dtype}`);
      const ident = await setupDecode(be, p, 'identity');
      const shuf = await setupDecode(be, p, 'shuffled');
      try {
        const [ti, ts, ri, rs] = await sampled(cpu ? [ident.decode, shuf.decode, ident.readTable, shuf.readTable] : [ident.decode, shuf.decode], samples);
        const overhead = spread(ts.map((x, i) => x / ti[i] - 1));
        if (!worst || overhead.median > worst.s.median) worst = { s: overhead, blockSize: p.blockSize };
        rows.push({
          ctx: p.ctxLen,
          batch: p.batch,
          blockSize: p.blockSize,
          dtype: p.dtype,
          replicas: ident.replicas,
          'identity GB/s': fmtSpread(spread(ti.map((x) => ident.kvBytes / x / GB)), 1),
          'shuffled GB/s': fmtSpread(spread(ts.map((x) => shuf.kvBytes / x / GB)), 1),
          overhead: fmtSpread(overhead, 1, 100, '%'),
          'plain read overhead': cpu ? fmtSpread(spread(rs.map((x, i) => x / ri[i] - 1)), 1, 100, '%') : 'n/a',
        });
      } finally {
        ident.release();
        shuf.release();
      }
    }
    ctx.table(`paged decode on ${describeBackend(be, 'decode.fp16')}, 8 KV heads x 128, GQA 4, cold pools; median (min-max) of ${samples} samples`, rows);
    ctx.record('backend', be.info());
    return [
      {
        metric: `paging overhead, shuffled vs contiguous table (worst point: blockSize ${worst?.blockSize}, ${describeBackend(be)})`,
        value: worst ? `${fmtSpread(worst.s, 1, 100, '%')}` : 'n/a',
        target: '<= 5%',
        met: worst !== undefined && worst.s.median <= 0.05,
      },
    ];
  },
};
