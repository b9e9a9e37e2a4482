// The memory tier and the chain memory -> disk: LRU by bytes, values pinned while a load
// reads them, promotion of disk hits, write-through saves, and misses that fall through to
// the next tier.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { openPrefixStore, type PrefixStore } from '../../lib/store/index.js';
import { forEachBackend } from '../util/backends.js';
import { Rng } from '../util/rng.js';
import { assertSameChunk, base, blocks, fill, hostPool, pick, prompt, removeDir, tempDir } from '../util/store.js';

const chunkBytes = 4096 + 3 * 2 * 8192;

forEachBackend('store: memory tier and the chain', (test, be) => {
  let dir = '';
  const stores: PrefixStore[] = [];
  const open = async (extra: Parameters<typeof base>[0]) => {
    const s = await openPrefixStore(base(extra));
    stores.push(s);
    return s;
  };
  test.before.each(() => {
    dir = tempDir('mem');
  });
  test.after.each(async () => {
    for (const s of stores.splice(0)) await s.close();
    removeDir(dir);
  });

  test('memory only: round trip byte-exact; LRU by bytes', async () => {
    const s = await open({ memory: { capacityBytes: 2 * chunkBytes } });
    assert.equal(s.tiers, ['memory']);
    const src = hostPool(be(), 40);
    const image = await fill(src, 41);
    const rng = new Rng(41);
    const k = s.keys(prompt(3, 1));
    const from = k.map(() => pick(rng, 40));
    for (const [i, key] of k.entries()) assert.equal((await s.save(key, blocks(src, from[i]))).tiers, { memory: 'stored' });
    assert.is(s.stats().memory!.chunks, 2);
    assert.is(s.stats().memory!.evictions, 1);
    assert.is(await s.lookup(k), 0, 'chunk 0 was evicted: no prefix');
    assert.is(await s.lookup(k.slice(1)), 2);
    const into = blocks(src, pick(rng, 40));
    const r = await s.load(k[2], into);
    assert.ok(r.ok && r.tier === 'memory');
    await assertSameChunk(into, image, from[2], 'from memory');
    src.release();
  });

  test('a value being loaded is pinned: eviction passes it over, and an insert with no other room is refused', async () => {
    const s = await open({ memory: { capacityBytes: 2 * chunkBytes } });
    const mem = s.tier('memory')!;
    const src = hostPool(be(), 40);
    const image = await fill(src, 42);
    const rng = new Rng(42);
    const k = s.keys(prompt(4, 2));
    const from = k.map(() => pick(rng, 40));
    await s.save(k[0], blocks(src, from[0]));
    await s.save(k[1], blocks(src, from[1]));
    const v2 = await gatherValue(s, src, from[2], k[2]);
    const v3 = await gatherValue(s, src, from[3], k[3]);
    const dst = hostPool(be(), 12);
    const into0 = blocks(dst, [5, 0, 9, 2, 11, 7]);
    const load0 = s.load(k[0], into0); // k0 is pinned before load() returns
    assert.ok(mem.isPinned(k[0]));
    assert.ok(mem.put(k[2], [v2]), 'room made by evicting k1, the unpinned one');
    assert.equal(mem.keys(), [k[0], k[2]]);
    assert.ok(mem.put(k[3], [v3]), 'k2 goes, not the older but pinned k0');
    assert.equal(mem.keys(), [k[0], k[3]]);
    const into3 = blocks(dst, [1, 3, 4, 6, 8, 10]);
    const load3 = s.load(k[3], into3);
    assert.not.ok(mem.put(k[2], [v2]), 'everything is pinned: refused, nothing evicted');
    assert.equal(mem.keys(), [k[0], k[3]]);
    assert.is(s.stats().memory!.rejected, 1);
    const [r0, r3] = await Promise.all([load0, load3]);
    assert.ok(r0.ok && r3.ok);
    await assertSameChunk(into0, image, from[0], 'k0 loaded intact while others came and went');
    await assertSameChunk(into3, image, from[3], 'k3');
    assert.not.ok(mem.isPinned(k[0]) || mem.isPinned(k[3]));
    assert.ok(mem.put(k[2], [v2]));
    assert.equal(mem.keys(), [k[3], k[2]]);
    dst.release();
    src.release();
  });

  test('memory -> disk: saves write through; a disk hit is promoted; a bad memory copy falls through to disk', async () => {
    const s = await open({ memory: { capacityBytes: 8 * chunkBytes }, disk: { dir, capacityBytes: 16 << 20 } });
    assert.equal(s.tiers, ['memory', 'disk']);
    const src = hostPool(be(), 40);
    const image = await fill(src, 43);
    const rng = new Rng(43);
    const k = s.keys(prompt(2, 3));
    const from = k.map(() => pick(rng, 40));
    assert.equal((await s.save(k[0], blocks(src, from[0]))).tiers, { disk: 'stored', memory: 'stored' });
    assert.equal((await s.save(k[0], blocks(src, from[0]))).tiers, { disk: 'present', memory: 'present' });
    await s.save(k[1], blocks(src, from[1]));

    // Only on disk: the hit is promoted to memory in the background.
    s.tier('memory')!.delete(k[1]);
    let r = await s.load(k[1], blocks(src, pick(rng, 40)));
    assert.ok(r.ok && r.tier === 'disk');
    await waitFor(() => s.tier('memory')!.has(k[1]));
    assert.is(s.stats().promotions.memory, 1);
    const into = blocks(src, pick(rng, 40));
    r = await s.load(k[1], into);
    assert.ok(r.ok && r.tier === 'memory');
    await assertSameChunk(into, image, from[1], 'promoted copy');

    // A damaged memory copy is refused, dropped, and the disk copy serves the load.
    const bad = Buffer.from(readFileSync(path.join(dir, `${k[0]}.kvc`)));
    bad[bad.length - 7] ^= 1;
    s.tier('memory')!.delete(k[0]);
    s.tier('memory')!.put(k[0], [bad]);
    const into0 = blocks(src, pick(rng, 40));
    r = await s.load(k[0], into0);
    assert.ok(r.ok && r.tier === 'disk', JSON.stringify(r));
    await assertSameChunk(into0, image, from[0], 'served by disk after memory refused');
    assert.is(s.stats().faults['payload-checksum'], 1);
    assert.equal(s.takeFailedLoads(), [], 'the load succeeded: nothing to hand back to compute');

    // Both copies bad: a miss listing both tiers.
    s.tier('memory')!.delete(k[0]);
    s.tier('memory')!.put(k[0], [bad]);
    writeFileSync(path.join(dir, `${k[0]}.kvc`), bad);
    r = await s.load(k[0], blocks(src, pick(rng, 40)));
    assert.ok(!r.ok);
    assert.equal(r.ok ? [] : r.tried, ['memory', 'disk']);
    assert.is(s.takeFailedLoads()[0]?.fault, 'payload-checksum');
    src.release();
  });
});

async function gatherValue(s: PrefixStore, pool: ReturnType<typeof hostPool>, ids: Int32Array, key: string): Promise<Buffer> {
  const { ChunkIo } = await import('../../lib/store/index.js');
  const io = new ChunkIo({ threads: 1 });
  try {
    return (await io.gather({ pool, blocks: ids }, s.spec, key)).value;
  } finally {
    io.close();
  }
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition not reached');
}
