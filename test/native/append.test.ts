// append-KV: rows land in the slots the slot mapping names (blockId * blockSize + offset),
// in the documented layout [2][numKvHeads][blockSize][headDim]; padding slots (-1) and
// untouched slots keep their bytes; append then attend needs no waiting (one queue).
import * as assert from 'uvu/assert';
import { refDecode, toStorage, type RefDType } from '../reference.js';
import { forEachBackend } from '../util/backends.js';
import { compare, elementOffset, randomValues } from '../util/paged.js';
import { Rng } from '../util/rng.js';

forEachBackend('append-KV', (test, be) => {
  for (const dtype of ['fp32', 'fp16', 'bf16'] as RefDType[]) {
    test(`slot mapping with padding rows, ${dtype}`, async () => {
      const b = be();
      const rng = new Rng(dtype.length * 31);
      const geo = { numKvHeads: 3, headDim: 80, blockSize: 16 };
      const numBlocks = 6;
      const pool = b.createPool({ tier: 'device', numBlocks, dtype, ...geo });
      const blockElems = 2 * geo.numKvHeads * geo.blockSize * geo.headDim;
      // A known background so untouched slots can be checked.
      const before = toStorage(dtype, randomValues(rng, numBlocks * blockElems, dtype));
      pool.write(before);
      const n = 40;
      const slots = rng.shuffle(Array.from({ length: numBlocks * geo.blockSize }, (_, i) => i)).slice(0, n);
      for (const i of [3, 17, 39]) slots[i] = -1;
      const row = geo.numKvHeads * geo.headDim;
      const k = toStorage(dtype, randomValues(rng, n * row, dtype));
      const v = toStorage(dtype, randomValues(rng, n * row, dtype));
      await b.appendKV({ pool, k, v, slotMapping: Int32Array.from(slots) });
      const after = await pool.read();
      const expect = before.slice();
      slots.forEach((s, t) => {
        if (s < 0) return;
        const block = Math.floor(s / geo.blockSize);
        for (let h = 0; h < geo.numKvHeads; h++)
          for (let d = 0; d < geo.headDim; d++) {
            expect[elementOffset(geo, block, 0, h, s % geo.blockSize) + d] = k[(t * geo.numKvHeads + h) * geo.headDim + d];
            expect[elementOffset(geo, block, 1, h, s % geo.blockSize) + d] = v[(t * geo.numKvHeads + h) * geo.headDim + d];
          }
      });
      for (let i = 0; i < expect.length; i++) if (after[i] !== expect[i]) assert.unreachable(`element ${i}: got ${after[i]} want ${expect[i]}`);
      pool.release();
    });
  }

  test('append tokens one step at a time, then decode (same queue, no waits)', async () => {
    const b = be();
    const rng = new Rng(2024);
    const geo = { numKvHeads: 2, headDim: 64, blockSize: 8 };
    const numHeads = 8;
    const lens = [21, 9];
    const tables = [rng.shuffle([0, 1, 2, 3, 4, 5, 6, 7]).slice(0, 3), [8, 9]];
    const pool = b.createPool({ tier: 'device', numBlocks: 10, dtype: 'fp32', ...geo });
    const row = geo.numKvHeads * geo.headDim;
    const seqs = lens.map((len) => ({ len, k: randomValues(rng, len * row, 'fp32'), v: randomValues(rng, len * row, 'fp32') }));
    // Prompt in one append with both sequences, as a chunked-prefill step would.
    const slots: number[] = [];
    const k: number[] = [];
    const v: number[] = [];
    seqs.forEach((s, bIdx) => {
      for (let t = 0; t < s.len; t++) {
        slots.push(tables[bIdx][Math.floor(t / geo.blockSize)] * geo.blockSize + (t % geo.blockSize));
        k.push(...s.k.subarray(t * row, (t + 1) * row));
        v.push(...s.v.subarray(t * row, (t + 1) * row));
      }
    });
    b.appendKV({ pool, k: Float32Array.from(k), v: Float32Array.from(v), slotMapping: Int32Array.from(slots) });
    const q = randomValues(rng, lens.length * numHeads * geo.headDim, 'fp32');
    const out = b.tensor({ dtype: 'fp32', shape: [2, numHeads, geo.headDim] });
    const blockTables = new Int32Array(2 * 3).fill(-1);
    tables.forEach((t, i) => blockTables.set(t, i * 3));
    await b.decode({ pool, q: Float32Array.from(q), out, blockTables, tableStride: 3, contextLens: Int32Array.from(lens), numHeads });
    const want = refDecode(seqs, q, { numHeads, numKvHeads: geo.numKvHeads, headDim: geo.headDim });
    const w = compare((await out.read()) as Float32Array, want, 'fp32');
    assert.ok(w.ratio <= 1, `element ${w.at}: got ${w.got} want ${w.want}`);
    pool.release();
    out.release();
  });
});
