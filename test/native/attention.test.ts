// Decode and prefill attention against the naive reference, on randomized paged layouts:
// shuffled block tables (one layer's blocks in any order in the pool), partial last
// blocks, GQA ratios 1/4/8, every head dim, block sizes 8..256, mixed lengths including
// zero-length decode, contexts of 1 and a few thousand, fp32/fp16/bf16. On the CPU every
// instruction-set level this machine supports runs each case against the same reference.
import * as assert from 'uvu/assert';
import type { Backend } from '../../lib/index.js';
import { decodeValues } from '../../lib/index.js';
import { refDecode, refPrefill, toStorage, type RefDType } from '../reference.js';
import { forEachBackend, levelName } from '../util/backends.js';
import { buildPaged, compare, randomValues, type PagedSpec } from '../util/paged.js';
import { Rng } from '../util/rng.js';

const HEAD_DIMS = [64, 80, 96, 128, 256];
const BLOCK_SIZES = [8, 16, 32, 64, 128, 256];
const DTYPES: RefDType[] = ['fp32', 'fp16', 'bf16'];
const GQA = [1, 4, 8];

interface AttnCase extends PagedSpec {
  numHeads: number;
  scale?: number;
}

function describe(c: AttnCase, seed: number): string {
  return `seed ${seed}: ${c.dtype} headDim ${c.headDim} blockSize ${c.blockSize} kvHeads ${c.numKvHeads} heads ${c.numHeads} lens [${c.lens.join(',')}]`;
}

async function runDecode(backends: Backend[], seed: number, c: AttnCase): Promise<void> {
  const rng = new Rng(seed);
  const p = buildPaged(rng, c);
  const q = randomValues(rng, c.lens.length * c.numHeads * c.headDim, c.dtype);
  const want = refDecode(p.seqs, q, { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, scale: c.scale });
  for (const be of backends) {
    const pool = be.createPool({ tier: 'device', numBlocks: p.numBlocks, numKvHeads: c.numKvHeads, headDim: c.headDim, blockSize: c.blockSize, dtype: c.dtype });
    const out = be.tensor({ dtype: c.dtype, shape: [c.lens.length, c.numHeads, c.headDim] });
    try {
      pool.write(p.image);
      await be.decode({ pool, q: toStorage(c.dtype, q), out, blockTables: p.blockTables, tableStride: p.tableStride, contextLens: p.contextLens, numHeads: c.numHeads, scale: c.scale });
      const got = decodeValues(await out.read(), c.dtype);
      const w = compare(got, want, c.dtype);
      assert.ok(w.ratio <= 1, `decode [${levelName(be)}] ${describe(c, seed)}: element ${w.at} got ${w.got} want ${w.want} (${w.ratio.toFixed(2)}x tolerance)`);
    } finally {
      pool.release();
      out.release();
    }
  }
}

async function runPrefill(backends: Backend[], seed: number, c: AttnCase, qLens: number[]): Promise<void> {
  const rng = new Rng(seed);
  const p = buildPaged(rng, c);
  const totalQ = qLens.reduce((a, b) => a + b, 0);
  const qStartLoc = new Int32Array(qLens.length + 1);
  qLens.forEach((n, i) => (qStartLoc[i + 1] = qStartLoc[i] + n));
  const q = randomValues(rng, Math.max(1, totalQ) * c.numHeads * c.headDim, c.dtype);
  const want = refPrefill(p.seqs, qLens, q, { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, scale: c.scale });
  for (const be of backends) {
    const pool = be.createPool({ tier: 'device', numBlocks: p.numBlocks, numKvHeads: c.numKvHeads, headDim: c.headDim, blockSize: c.blockSize, dtype: c.dtype });
    const out = be.tensor({ dtype: c.dtype, shape: [Math.max(1, totalQ), c.numHeads, c.headDim] });
    try {
      pool.write(p.image);
      await be.prefill({ pool, q: toStorage(c.dtype, q), out, qStartLoc, blockTables: p.blockTables, tableStride: p.tableStride, contextLens: p.contextLens, numHeads: c.numHeads, scale: c.scale });
      const got = decodeValues(await out.read(), c.dtype).subarray(0, totalQ * c.numHeads * c.headDim);
      const w = compare(got, want, c.dtype);
      assert.ok(w.ratio <= 1, `prefill [${levelName(be)}] ${describe(c, seed)} qLens [${qLens.join(',')}]: element ${w.at} got ${w.got} want ${w.want} (${w.ratio.toFixed(2)}x tolerance)`);
    } finally {
      pool.release();
      out.release();
    }
  }
}

function randomCase(rng: Rng, i: number): AttnCase {
  const headDim = HEAD_DIMS[i % HEAD_DIMS.length];
  const dtype = DTYPES[i % DTYPES.length];
  const blockSize = rng.pick(BLOCK_SIZES);
  const numKvHeads = rng.pick([1, 2, 4]);
  const numHeads = numKvHeads * GQA[i % GQA.length];
  const batch = rng.int(1, 5);
  const lens = Array.from({ length: batch }, () => rng.pick([0, 1, rng.int(2, 3 * blockSize), rng.int(1, 600)]));
  return { dtype, headDim, blockSize, numKvHeads, numHeads, lens, kScale: rng.pick([1, 4]) };
}

forEachBackend('decode attention', (test, _be, _kind, levels) => {
  test('randomized shapes: head dims, block sizes, GQA 1/4/8, dtypes, mixed lengths with zero', async () => {
    const rng = new Rng(1234);
    for (let i = 0; i < 30; i++) await runDecode(levels(), 1000 + i, randomCase(rng, i));
  });

  test('every head dim x dtype with partial last blocks', async () => {
    let seed = 77;
    for (const headDim of HEAD_DIMS)
      for (const dtype of DTYPES)
        await runDecode(levels(), seed++, { dtype, headDim, blockSize: 16, numKvHeads: 2, numHeads: 8, lens: [17, 1, 0, 31] });
  });

  test('context 1 and block-size boundaries', async () => {
    for (const blockSize of BLOCK_SIZES)
      await runDecode(levels(), 5 + blockSize, { dtype: 'fp32', headDim: 64, blockSize, numKvHeads: 1, numHeads: 4, lens: [1, blockSize, blockSize + 1, 2 * blockSize - 1] });
  });

  test('long contexts (a few thousand tokens) in fp16, bf16 and fp32', async () => {
    await runDecode(levels(), 901, { dtype: 'fp16', headDim: 128, blockSize: 16, numKvHeads: 2, numHeads: 16, lens: [3000, 4096, 77] });
    await runDecode(levels(), 902, { dtype: 'bf16', headDim: 128, blockSize: 32, numKvHeads: 1, numHeads: 8, lens: [3500] , kScale: 3 });
    await runDecode(levels(), 903, { dtype: 'fp32', headDim: 64, blockSize: 256, numKvHeads: 4, numHeads: 4, lens: [2049, 5000] });
  });

  test('explicit softmax scale', async () => {
    await runDecode(levels(), 42, { dtype: 'fp32', headDim: 96, blockSize: 8, numKvHeads: 2, numHeads: 4, lens: [40, 3], scale: 0.37 });
  });

  test('batch of only zero-length sequences writes zeros', async () => {
    for (const b of levels()) {
      const pool = b.createPool({ tier: 'device', numBlocks: 2, numKvHeads: 1, headDim: 64, blockSize: 8, dtype: 'fp16' });
      const out = b.tensorFrom(new Uint16Array(2 * 64).fill(0x3c00), 'fp16', [2, 1, 64]);
      await b.decode({ pool, q: new Uint16Array(2 * 64).fill(0x3c00), out, blockTables: new Int32Array([0, 1]), tableStride: 1, contextLens: new Int32Array([0, 0]), numHeads: 1 });
      assert.ok((await out.read()).every((x) => x === 0 || x === 0x8000), levelName(b));
      pool.release();
      out.release();
    }
  });
});

forEachBackend('prefill attention', (test, _be, _kind, levels) => {
  test('randomized chunked prefill: chunk within a longer context, fresh prompts, empty chunks', async () => {
    const rng = new Rng(99);
    for (let i = 0; i < 18; i++) {
      const c = randomCase(rng, i);
      c.lens = c.lens.map((l) => Math.min(l, 300));
      const qLens = c.lens.map((l) => (l === 0 ? 0 : rng.pick([l, rng.int(0, l), 1])));
      await runPrefill(levels(), 3000 + i, c, qLens);
    }
  });

  test('every head dim x dtype, GQA 8', async () => {
    let seed = 500;
    for (const headDim of HEAD_DIMS)
      for (const dtype of DTYPES)
        await runPrefill(levels(), seed++, { dtype, headDim, blockSize: 32, numKvHeads: 1, numHeads: 8, lens: [45, 70] }, [45, 13]);
  });

  test('long context with a late chunk', async () => {
    await runPrefill(levels(), 811, { dtype: 'fp16', headDim: 128, blockSize: 64, numKvHeads: 2, numHeads: 8, lens: [2500] }, [48]);
    await runPrefill(levels(), 812, { dtype: 'bf16', headDim: 64, blockSize: 16, numKvHeads: 2, numHeads: 4, lens: [1800, 300] }, [32, 300]);
  });

  test('one-token chunks equal decode', async () => {
    for (const b of levels()) {
      const rng = new Rng(7);
      const c: AttnCase = { dtype: 'fp32', headDim: 64, blockSize: 16, numKvHeads: 2, numHeads: 4, lens: [37, 5, 16] };
      const p = buildPaged(rng, c);
      const pool = b.createPool({ tier: 'device', numBlocks: p.numBlocks, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp32' });
      pool.write(p.image);
      const q = Float32Array.from(randomValues(rng, 3 * 4 * 64, 'fp32'));
      const o1 = b.tensor({ dtype: 'fp32', shape: [3, 4, 64] });
      const o2 = b.tensor({ dtype: 'fp32', shape: [3, 4, 64] });
      const args = { pool, q, blockTables: p.blockTables, tableStride: p.tableStride, contextLens: p.contextLens, numHeads: 4 };
      b.decode({ ...args, out: o1 });
      await b.prefill({ ...args, out: o2, qStartLoc: new Int32Array([0, 1, 2, 3]) });
      const w = compare(await o2.read() as Float32Array, await o1.read() as Float32Array, 'fp32');
      assert.ok(w.ratio <= 1, `[${levelName(b)}] element ${w.at}: prefill ${w.got} vs decode ${w.want}`);
      pool.release();
      o1.release();
      o2.release();
    }
  });
});
