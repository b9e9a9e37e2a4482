// Paging overhead of decode attention: the same KV bytes read through a shuffled block
// table (blocks scattered over the pool, as after allocation churn) vs an identity table
// (each sequence's blocks contiguous and in order). Overhead = t_shuffled / t_identity - 1.
// Default suite: ctx 8K, batch 4, 8 KV heads x 128, fp16, block sizes 16 and 64.
// --full: block sizes 8..256 and two more shapes.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import type { DType } from '../../lib/index.js';
import { GB, alternate, openBench, setupDecode, type DecodePoint } from './10-attention.js';

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
  estimate: '20 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = openBench(ctx);
    const rows: Record<string, unknown>[] = [];
    let worst = -Infinity;
    for (const p of points(ctx.full)) {
      ctx.progress(`paging ctx ${p.ctxLen} batch ${p.batch} blockSize ${p.blockSize} ${p.dtype}`);
      const times: Record<string, number> = {};
      let kvBytes = 0;
      const ident = await setupDecode(be, p, 'identity');
      const shuf = await setupDecode(be, p, 'shuffled');
      try {
        kvBytes = ident.kvBytes;
        [times.identity, times.shuffled] = await alternate([ident.run, shuf.run], 3);
      } finally {
        ident.release();
        shuf.release();
      }
      const overhead = times.shuffled / times.identity - 1;
      worst = Math.max(worst, overhead);
      rows.push({
        ctx: p.ctxLen,
        batch: p.batch,
        blockSize: p.blockSize,
        dtype: p.dtype,
        'identity ms': times.identity * 1e3,
        'shuffled ms': times.shuffled * 1e3,
        'identity GB/s': kvBytes / times.identity / GB,
        'shuffled GB/s': kvBytes / times.shuffled / GB,
        overhead: `${(overhead * 100).toFixed(1)}%`,
      });
    }
    ctx.table(`paged decode on ${be.name} (${be.deviceName}), 8 KV heads x 128, GQA 4`, rows);
    return [{ metric: `paging overhead, shuffled vs contiguous table (worst, ${be.name})`, value: `${(worst * 100).toFixed(1)}%`, target: '<= 5%', met: worst <= 0.05 }];
  },
};
