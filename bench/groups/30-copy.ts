// Scattered block copies (offload device -> host, load host -> device) vs a contiguous copy
// of the same bytes: the same copyBlocks op with identity pairs (i -> i), whose runs are
// contiguous on both sides. Many small scattered copies are what a per-layer offload
// issues; the question is whether they reach memcpy speed. Both copies move 128 MiB per
// call (cold against the last-level cache) on the same threads; each figure is the median
// and range over samples, the two copies taken in turn.
// Default suite: layer-blocks of 16 KiB .. 2 MiB, both directions. --full: 512 MiB per copy.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import type { KVPool } from '../../lib/index.js';
import { GB, describeBackend, fillPool, fmtSpread, identityPairs, openBench, sampled, shuffled, spread, type Spread } from '../native.js';

// fp16, headDim 128: one token of one KV head is 512 bytes (K and V).
const GEOMETRIES = [
  { kib: 16, numKvHeads: 2, blockSize: 16 },
  { kib: 64, numKvHeads: 8, blockSize: 16 },
  { kib: 256, numKvHeads: 8, blockSize: 64 },
  { kib: 1024, numKvHeads: 8, blockSize: 256 },
  { kib: 2048, numKvHeads: 16, blockSize: 256 },
];

function scatteredPairs(n: number, seed: number): Int32Array {
  const src = shuffled(n, seed);
  const dst = shuffled(n, seed * 7 + 1);
  const p = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    p[2 * i] = src[i];
    p[2 * i + 1] = dst[i];
  }
  return p;
}

export const group: BenchGroup = {
  name: 'copy',
  title: 'Scattered block copies vs contiguous copy of the same bytes',
  estimate: '25 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = openBench(ctx);
    const total = (ctx.full ? 512 : 128) * 2 ** 20;
    const samples = ctx.full ? 7 : 5;
    const rows: Record<string, unknown>[] = [];
    let worst: { s: Spread; at: string } | undefined;
    let worst16: { s: Spread; at: string } | undefined;
    for (const g of GEOMETRIES) {
      const numBlocks = Math.floor(total / (g.kib * 1024));
      const geo = { numBlocks, numKvHeads: g.numKvHeads, headDim: 128, blockSize: g.blockSize, dtype: 'fp16' as const };
      const dev = be.createPool({ tier: 'device', ...geo });
      const host = be.createPool({ tier: 'host', ...geo });
      try {
        await fillPool(dev);
        await fillPool(host);
        const ident = identityPairs(numBlocks);
        const scat = scatteredPairs(numBlocks, g.kib);
        for (const [dir, src, dst] of [
          ['offload d2h', dev, host],
          ['load h2d', host, dev],
        ] as [string, KVPool, KVPool][]) {
          ctx.progress(`${dir} ${g.kib} KiB blocks`);
          const [tc, ts] = await sampled([() => be.copyBlocks(src, dst, ident), () => be.copyBlocks(src, dst, scat)], samples);
          const ratio = spread(tc.map((x, i) => x / ts[i]));
          const at = `${dir} ${g.kib} KiB`;
          if (g.kib >= 64 && (!worst || ratio.median < worst.s.median)) worst = { s: ratio, at };
          if (g.kib < 64 && (!worst16 || ratio.median < worst16.s.median)) worst16 = { s: ratio, at };
          const bytes = numBlocks * dev.blockBytes;
          rows.push({
            direction: dir,
            'block KiB': g.kib,
            blocks: numBlocks,
            'contiguous GB/s': fmtSpread(spread(tc.map((x) => bytes / x / GB)), 1),
            'scattered GB/s': fmtSpread(spread(ts.map((x) => bytes / x / GB)), 1),
            'scattered/contiguous': fmtSpread(ratio),
          });
        }
      } finally {
        dev.release();
        host.release();
      }
    }
    ctx.table(`copyBlocks on ${describeBackend(be)}, ${total / 2 ** 20} MiB per copy; median (min-max) of ${samples} samples`, rows);
    ctx.record('backend', be.info());
    return [
      {
        metric: `scattered / contiguous copy, blocks >= 64 KiB (worst: ${worst?.at}, ${be.name})`,
        value: worst ? `${fmtSpread(worst.s)}x` : 'n/a',
        target: '>= 0.9x',
        met: worst !== undefined && worst.s.median >= 0.9,
      },
      { metric: `scattered / contiguous copy, 16 KiB blocks (worst: ${worst16?.at}, ${be.name})`, value: worst16 ? `${fmtSpread(worst16.s)}x` : 'n/a' },
    ];
  },
};
