// Block copies between tiers, queue ordering through waitFor, and memory lifetime:
// device -> host -> device round trips are byte-exact, many copies may be in flight,
// a compute op that waits for a load sees the loaded blocks, releasing pools while their
// copies run is safe, and liveBytes returns to its baseline.
import * as assert from 'uvu/assert';
import type { Backend, KVPool, Work } from '../../lib/index.js';
import { refDecode, toStorage } from '../reference.js';
import { forEachBackend } from '../util/backends.js';
import { buildPaged, compare, randomValues } from '../util/paged.js';
import { Rng } from '../util/rng.js';

const GEO = { numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' as const };
const BLOCK_ELEMS = 2 * GEO.numKvHeads * GEO.blockSize * GEO.headDim;

function randomImage(rng: Rng, numBlocks: number): Uint16Array {
  const a = new Uint16Array(numBlocks * BLOCK_ELEMS);
  for (let i = 0; i < a.length; i++) a[i] = rng.int(0, 0x7bff) | (rng.next() < 0.5 ? 0x8000 : 0);
  return a;
}

function block(image: Uint16Array, id: number): Uint16Array {
  return image.subarray(id * BLOCK_ELEMS, (id + 1) * BLOCK_ELEMS);
}

function sameBlock(got: Uint16Array, gotId: number, want: Uint16Array, wantId: number, what: string): void {
  const g = block(got, gotId);
  const w = block(want, wantId);
  for (let i = 0; i < w.length; i++)
    if (g[i] !== w[i]) assert.unreachable(`${what}: block ${gotId} element ${i} is ${g[i]}, want ${w[i]} (from block ${wantId})`);
}

function pool(b: Backend, tier: 'device' | 'host', numBlocks: number): KVPool {
  return b.createPool({ tier, numBlocks, ...GEO });
}

forEachBackend('block copies', (test, be) => {
  test('device -> host -> device round trip is byte-exact, shuffled pairs', async () => {
    const b = be();
    const rng = new Rng(11);
    const n = 40;
    const image = randomImage(rng, n);
    const dev = pool(b, 'device', n);
    const host = pool(b, 'host', 64);
    const back = pool(b, 'device', n);
    // The write runs on the compute queue and the offload on d2h: order them explicitly.
    const wrote = dev.write(image);
    const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
    const hostIds = rng.shuffle(Array.from({ length: 64 }, (_, i) => i)).slice(0, n);
    const out = new Int32Array(2 * n);
    const inn = new Int32Array(2 * n);
    order.forEach((src, i) => {
      out.set([src, hostIds[i]], 2 * i);
      inn.set([hostIds[i], src], 2 * i);
    });
    const off = b.copyBlocks(dev, host, out, { waitFor: [wrote] });
    await b.copyBlocks(host, back, inn, { waitFor: [off] });
    const hostImage = (await host.read()) as Uint16Array;
    order.forEach((src, i) => sameBlock(hostImage, hostIds[i], image, src, 'host'));
    const got = (await back.read()) as Uint16Array;
    for (let i = 0; i < n; i++) sameBlock(got, i, image, i, 'round trip');
    for (const p of [dev, host, back]) p.release();
  });

  test('a copy larger than the caches (streamed stores) is byte-exact: scattered blocks and runs', async () => {
    const b = be();
    const rng = new Rng(5);
    const n = 2600; // 8 KiB blocks: 20 MiB, past the size where copies bypass the caches
    const image = new Uint16Array(n * BLOCK_ELEMS);
    for (let i = 0; i < image.length; i++) image[i] = (Math.imul(i, 2654435761) >>> 16) & 0x7bff;
    const src = pool(b, 'device', n);
    const dst = pool(b, 'host', n + 7);
    try {
      const wrote = src.write(image);
      // A run of 300 consecutive blocks, then the rest scattered.
      const rest = rng.shuffle(Array.from({ length: n + 7 }, (_, i) => i).filter((x) => x < 5 || x >= 305));
      const pairs = new Int32Array(2 * n);
      for (let i = 0; i < n; i++) pairs.set([i, i < 300 ? 5 + i : rest[i - 300]], 2 * i);
      await b.copyBlocks(src, dst, pairs, { waitFor: [wrote] });
      const got = (await dst.read()) as Uint16Array;
      for (let i = 0; i < n; i++) sameBlock(got, pairs[2 * i + 1], image, i, 'streamed copy');
    } finally {
      src.release();
      dst.release();
    }
  });

  test('many copies in flight at once, on all three queues', async () => {
    const b = be();
    const rng = new Rng(12);
    const n = 64;
    const image = randomImage(rng, n);
    const src = pool(b, 'device', n);
    const host = pool(b, 'host', n);
    const dev2 = pool(b, 'device', n);
    const host2 = pool(b, 'host', n);
    await src.write(image);
    const works: Work[] = [];
    for (let i = 0; i < n; i++) works.push(b.copyBlocks(src, host, new Int32Array([i, n - 1 - i]))); // d2h
    for (let i = 0; i < n; i += 2) works.push(b.copyBlocks(src, dev2, new Int32Array([i, i, i + 1, i + 1]))); // compute
    await Promise.all(works);
    const loads: Work[] = [];
    for (let i = 0; i < n; i++) loads.push(b.copyBlocks(host, host2, new Int32Array([i, i]))); // host -> host (d2h)
    await Promise.all(loads);
    const h2 = (await host2.read()) as Uint16Array;
    const d2 = (await dev2.read()) as Uint16Array;
    for (let i = 0; i < n; i++) {
      sameBlock(h2, n - 1 - i, image, i, 'host copies');
      sameBlock(d2, i, image, i, 'device copies');
    }
    for (const p of [src, host, dev2, host2]) p.release();
  });

  test('decode waits for a host -> device load through waitFor (no JS-side await)', async () => {
    const b = be();
    const rng = new Rng(13);
    const c = { dtype: 'fp16' as const, numKvHeads: 2, headDim: 64, blockSize: 16, lens: [700, 333] };
    const p = buildPaged(rng, { ...c, spareBlocks: 0 });
    const host = b.createPool({ tier: 'host', numBlocks: p.numBlocks, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
    const dev = b.createPool({ tier: 'device', numBlocks: p.numBlocks, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
    await host.write(p.image);
    // The device pool holds stale data until the load lands.
    await dev.write(new Uint16Array(p.image.length).fill(0x3c00));
    const pairs = new Int32Array(2 * p.numBlocks);
    for (let i = 0; i < p.numBlocks; i++) pairs.set([i, i], 2 * i);
    const load = b.copyBlocks(host, dev, pairs);
    const q = randomValues(rng, 2 * 8 * 64, 'fp16');
    const out = b.tensor({ dtype: 'fp16', shape: [2, 8, 64] });
    const dec = b.decode({ pool: dev, q: toStorage('fp16', q), out, blockTables: p.blockTables, tableStride: p.tableStride, contextLens: p.contextLens, numHeads: 8, waitFor: [load] });
    await dec;
    assert.ok(load.done, 'the load finished before the decode that waited for it');
    const got = await out.readFloat32();
    const w = compare(got, refDecode(p.seqs, q, { numHeads: 8, numKvHeads: 2, headDim: 64 }), 'fp16');
    assert.ok(w.ratio <= 1, `element ${w.at}: got ${w.got} want ${w.want}`);
    for (const x of [host, dev, out]) x.release();
  });

  test('offload waits for the append that wrote the blocks', async () => {
    const b = be();
    const rng = new Rng(14);
    const dev = pool(b, 'device', 4);
    const host = pool(b, 'host', 4);
    const rows = 3 * GEO.blockSize;
    const k = toStorage('fp16', randomValues(rng, rows * GEO.numKvHeads * GEO.headDim, 'fp16'));
    const v = toStorage('fp16', randomValues(rng, rows * GEO.numKvHeads * GEO.headDim, 'fp16'));
    const slots = Int32Array.from({ length: rows }, (_, i) => GEO.blockSize + i); // blocks 1..3
    const app = b.appendKV({ pool: dev, k, v, slotMapping: slots });
    const off = b.copyBlocks(dev, host, new Int32Array([1, 0, 2, 1, 3, 2]), { waitFor: [app] });
    await off;
    const want = (await dev.read()) as Uint16Array;
    const got = (await host.read()) as Uint16Array;
    for (let i = 0; i < 3; i++) sameBlock(got, i, want, i + 1, 'offloaded');
    dev.release();
    host.release();
  });

  test('a long chain of copies across queues, ordered only by waitFor', async () => {
    const b = be();
    const rng = new Rng(16);
    const n = 8;
    const image = randomImage(rng, n);
    const dev = pool(b, 'device', n);
    const host = pool(b, 'host', n);
    let last = dev.write(image);
    // Each hop moves every block one slot along (i -> i+1 mod n) and alternates
    // direction, so the final placement is wrong if any hop ran before the previous one.
    const hops = 60;
    const pairs = Int32Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? i >> 1 : ((i >> 1) + 1) % n));
    for (let h = 0; h < hops; h++) last = h % 2 === 0 ? b.copyBlocks(dev, host, pairs, { waitFor: [last] }) : b.copyBlocks(host, dev, pairs, { waitFor: [last] });
    await last;
    const got = (await dev.read()) as Uint16Array;
    for (let i = 0; i < n; i++) sameBlock(got, (i + hops) % n, image, i, 'after the chain');
    dev.release();
    host.release();
  });

  test('releasing pools while their copies are in flight is safe; liveBytes returns to baseline', async () => {
    const b = be();
    const baseDev = b.liveBytes('device');
    const baseHost = b.liveBytes('host');
    const n = 256;
    const src = pool(b, 'device', n);
    const dst = pool(b, 'host', n);
    assert.is(b.liveBytes('device'), baseDev + src.bytes);
    assert.is(b.liveBytes('host'), baseHost + dst.bytes);
    const image = randomImage(new Rng(15), n);
    const wr = src.write(image);
    const pairs = Int32Array.from({ length: 2 * n }, (_, i) => (i >> 1));
    const works = [b.copyBlocks(src, dst, pairs, { waitFor: [wr] }), b.copyBlocks(src, dst, pairs.reverse().slice().reverse(), { waitFor: [wr] })];
    src.release();
    dst.release();
    assert.ok(src.released && dst.released);
    await Promise.all(works);
    assert.is(b.liveBytes('device'), baseDev);
    assert.is(b.liveBytes('host'), baseHost);
  });

  test('tensors: memory returned after release, reads after writes in issue order', async () => {
    const b = be();
    const base = b.liveBytes('device');
    const t = b.tensor({ dtype: 'fp32', shape: [4, 256] });
    assert.is(b.liveBytes('device'), base + 4 * 1024);
    t.write(new Float32Array(1024).fill(1));
    t.write(new Float32Array([5, 6]), { offset: 10 });
    const r = (await t.read()) as Float32Array;
    assert.equal([r[9], r[10], r[11], r[12]], [1, 5, 6, 1]);
    const tmp = b.tensorFrom(new Uint16Array([1, 2, 3]), 'bf16');
    assert.equal([...((await tmp.read()) as Uint16Array)], [1, 2, 3]);
    t.release();
    tmp.release();
    assert.is(b.liveBytes('device'), base);
  });
});
