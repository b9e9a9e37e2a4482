// The Redis tier against a real redis-server started for these tests: round trips through
// parts, keys that stay in one Cluster slot per chunk, TTLs, two stores sharing one Redis,
// damaged or partial values, Redis killed or frozen during a load, Redis down at start, and
// namespaces. Skipped with the reason printed when redis-server is not installed.
import { createClient } from '@redis/client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createBackend, type Backend } from '../../lib/index.js';
import { openPrefixStore, type PrefixStore, type PrefixStoreOptions } from '../../lib/store/index.js';
import { RedisServer, printRedisSkip, redisSkipReason } from '../../scripts/redis-server.js';
import { Rng } from '../util/rng.js';
import { assertSameChunk, base, blocks, fill, hostPool, pick, prompt, removeDir, tempDir } from '../util/store.js';

const chunkBytes = 4096 + 3 * 2 * 8192; // 53248: four parts of 16 KiB
const PART = 16384;

// CRC16/XMODEM of the hash tag, mod 16384: the Redis Cluster slot of a key.
function slot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const tag = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const b of Buffer.from(tag)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

// A load must settle by itself; this only keeps a broken build from hanging the suite.
async function settles<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} did not settle in 30 s`)), 30_000)));
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(t);
  }
}

const s = suite('store: redis tier');
const why = redisSkipReason();
if (why) {
  printRedisSkip(why);
  s.skip('redis tier', () => {});
} else {
  let server: RedisServer;
  let be: Backend;
  let raw: ReturnType<typeof createClient>;
  const stores: PrefixStore[] = [];
  const dirs: string[] = [];
  const open = async (extra: Partial<PrefixStoreOptions> = {}) => {
    const st = await openPrefixStore(base({ redis: { url: server.url, partBytes: PART, timeoutMs: 2000, backoffMs: 100 }, ...extra }));
    stores.push(st);
    return st;
  };

  s.before(async () => {
    server = await RedisServer.start();
    be = createBackend({ backend: 'cpu' });
    raw = createClient({ url: server.url });
    raw.on('error', () => {});
    await raw.connect();
  });
  s.after.each(async () => {
    for (const st of stores.splice(0)) await st.close();
    for (const d of dirs.splice(0)) removeDir(d);
    if (raw.isReady) await raw.flushAll();
  });
  s.after(async () => {
    raw.destroy();
    await server.stop();
  });

  s('round trip through Redis is byte-exact; a chunk is parts in one Cluster slot, with a TTL', async () => {
    const st = await open({ redis: { url: server.url, partBytes: PART, ttlSeconds: 600 } });
    const src = hostPool(be, 40);
    const dst = hostPool(be, 40);
    const image = await fill(src, 51);
    const rng = new Rng(51);
    const k = st.keys(prompt(3, 1));
    const from = k.map(() => pick(rng, 40));
    for (const [i, key] of k.entries()) assert.equal((await st.save(key, blocks(src, from[i]))).tiers, { redis: 'stored' });
    assert.equal((await st.save(k[0], blocks(src, from[0]))).tiers, { redis: 'present' });
    const names = (await raw.keys('kvcake:c1:*')).sort();
    assert.is(names.length, 3 * Math.ceil(chunkBytes / PART));
    for (const key of k) {
      const parts = names.filter((n) => n.includes(`{${key}}`));
      assert.equal(parts, [0, 1, 2, 3].map((p) => `kvcake:c1:{${key}}:${p}`));
      assert.is(new Set(parts.map(slot)).size, 1, 'all parts of a chunk share a slot');
      const ttl = await raw.pTTL(parts[0]);
      assert.ok(ttl > 590_000 && ttl <= 600_000, `ttl ${ttl}`);
    }
    assert.ok(new Set(k.map((key) => slot(`{${key}}`))).size > 1, 'different chunks spread over slots');
    assert.is(await st.lookup(k), 3);
    for (const [i, key] of k.entries()) {
      const into = blocks(dst, pick(rng, 40));
      const r = await st.load(key, into);
      assert.ok(r.ok && r.tier === 'redis', JSON.stringify(r));
      await assertSameChunk(into, image, from[i], `chunk ${i}`);
    }
    // A hit refreshes the TTL.
    await raw.pExpire(`kvcake:c1:{${k[0]}}:2`, 1000);
    assert.ok((await st.load(k[0], blocks(dst, pick(rng, 40)))).ok);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok((await raw.pTTL(`kvcake:c1:{${k[0]}}:2`)) > 500_000);
    src.release();
    dst.release();
  });

  s('two stores sharing one Redis: the second reuses the first one\'s prefix and promotes it to its local tiers', async () => {
    const dirB = tempDir('redis-b');
    dirs.push(dirB);
    const a = await open({ memory: { capacityBytes: 1 << 24 } });
    const b = await open({ memory: { capacityBytes: 1 << 24 }, disk: { dir: dirB, capacityBytes: 16 << 20 } });
    const src = hostPool(be, 40);
    const dst = hostPool(be, 40);
    const image = await fill(src, 52);
    const rng = new Rng(52);
    const k = a.keys(prompt(4, 2));
    assert.equal(b.keys(prompt(4, 2)), k, 'the same keys in both stores');
    const from = k.map(() => pick(rng, 40));
    for (const [i, key] of k.slice(0, 3).entries()) await a.save(key, blocks(src, from[i]));
    assert.is(await b.lookup(k), 3, 'a partial hit: three of four chunks');
    for (let i = 0; i < 3; i++) {
      const into = blocks(dst, pick(rng, 40));
      const r = await b.load(k[i], into);
      assert.ok(r.ok && r.tier === 'redis');
      await assertSameChunk(into, image, from[i], `chunk ${i} in the second store`);
    }
    await waitFor(async () => b.stats().promotions.disk === 3);
    assert.is(b.stats().promotions.memory, 3);
    const r = await b.load(k[1], blocks(dst, pick(rng, 40)));
    assert.ok(r.ok && r.tier === 'memory');
    b.tier('memory')!.delete(k[2]);
    const into = blocks(dst, pick(rng, 40));
    const r2 = await b.load(k[2], into);
    assert.ok(r2.ok && r2.tier === 'disk');
    await assertSameChunk(into, image, from[2], 'promoted to disk');
    src.release();
    dst.release();
  });

  s('a damaged part is a miss and is removed; a missing part is a miss', async () => {
    const events: string[] = [];
    const st = await open({ log: (e) => events.push(`${e.event}:${e.fault}`) });
    const src = hostPool(be, 40);
    await fill(src, 53);
    const rng = new Rng(53);
    const k = st.keys(prompt(2, 3));
    for (const key of k) await st.save(key, blocks(src, pick(rng, 40)));
    await raw.setRange(`kvcake:c1:{${k[0]}}:2`, 100, 'X');
    let r = await st.load(k[0], blocks(src, pick(rng, 40)));
    assert.ok(!r.ok && r.fault === 'payload-checksum', JSON.stringify(r));
    await waitFor(async () => (await raw.exists(`kvcake:c1:{${k[0]}}:0`)) === 0);
    await raw.del(`kvcake:c1:{${k[1]}}:3`);
    r = await st.load(k[1], blocks(src, pick(rng, 40)));
    assert.ok(!r.ok && r.fault === 'missing');
    assert.equal(events, ['load-refused:payload-checksum']);
    assert.equal(st.takeFailedLoads().map((f) => f.fault), ['payload-checksum', 'missing']);
    src.release();
  });

  s('Redis killed during a load: the load misses (no hang, no crash); the store recovers when Redis is back', async () => {
    const events: string[] = [];
    const st = await open({ log: (e) => events.push(e.event) });
    const src = hostPool(be, 40);
    await fill(src, 54);
    const rng = new Rng(54);
    const k = st.keys(prompt(2, 4));
    await st.save(k[0], blocks(src, pick(rng, 40)));
    // Hold the server's replies so the kill lands while the load waits for its MGET.
    await raw.sendCommand(['CLIENT', 'PAUSE', '10000', 'ALL']);
    const loading = st.load(k[0], blocks(src, pick(rng, 40)));
    await new Promise((r) => setTimeout(r, 50));
    await server.kill();
    const r = await settles(loading, 'the load');
    assert.ok(!r.ok && r.fault === 'io', JSON.stringify(r));
    assert.match(r.ok ? '' : r.message, /^redis [0-9a-f]{12}: io: /);
    const r2 = await settles(st.load(k[0], blocks(src, pick(rng, 40))), 'a load while Redis is down');
    assert.ok(!r2.ok);
    assert.is(await st.lookup(k), 0);
    assert.equal((await st.save(k[1], blocks(src, pick(rng, 40)))).tiers, { redis: 'skipped' });
    await server.restart();
    await raw.connect().catch(() => {});
    await waitFor(async () => st.stats().redis!.available);
    assert.equal((await st.save(k[1], blocks(src, pick(rng, 40)))).tiers, { redis: 'stored' });
    assert.ok((await st.load(k[1], blocks(src, pick(rng, 40)))).ok);
    assert.ok(events.includes('redis-down') && events.includes('redis-up'), events.join(','));
    src.release();
  });

  s('Redis frozen (SIGSTOP) during a load: the load misses at its deadline', async () => {
    const st = await open({ redis: { url: server.url, partBytes: PART, timeoutMs: 300, backoffMs: 50 } });
    const src = hostPool(be, 40);
    await fill(src, 55);
    const rng = new Rng(55);
    const [k] = st.keys(prompt(1, 5));
    await st.save(k, blocks(src, pick(rng, 40)));
    server.signal('SIGSTOP');
    try {
      const r = await settles(st.load(k, blocks(src, pick(rng, 40))), 'the load');
      assert.ok(!r.ok && r.fault === 'io');
      assert.match(r.ok ? '' : r.message, /no reply within 300 ms/);
      assert.is(st.stats().redis!.timeouts, 1);
    } finally {
      server.signal('SIGCONT');
    }
    await waitFor(async () => st.stats().redis!.available);
    assert.ok((await st.load(k, blocks(src, pick(rng, 40)))).ok);
    src.release();
  });

  s('Redis down at start: a clear error, or with required: false a store that misses until Redis is up', async () => {
    const spare = await RedisServer.start();
    await spare.kill(); // its port now refuses connections
    await openPrefixStore(base({ redis: { url: spare.url, connectTimeoutMs: 300 } })).then(
      () => assert.unreachable('opened without Redis'),
      (e: Error) =>
        assert.match(
          e.message,
          new RegExp(`^prefix store: cannot reach Redis at ${spare.url.replace(/\//g, '\\/')} \\(.*ECONNREFUSED.*\\)\\. Start it, point redis.url \\(or KVCAKE_REDIS_URL\\) at a reachable server, or pass redis.required = false to open without it$`),
        ),
    );
    const st = await open({ redis: { url: spare.url, required: false, partBytes: PART, backoffMs: 50 } });
    const src = hostPool(be, 40);
    await fill(src, 56);
    const rng = new Rng(56);
    const [k] = st.keys(prompt(1, 6));
    assert.is(await st.lookup([k]), 0);
    assert.ok(!(await st.load(k, blocks(src, pick(rng, 40)))).ok);
    assert.equal((await st.save(k, blocks(src, pick(rng, 40)))).tiers, { redis: 'skipped' });
    await spare.restart();
    await waitFor(async () => st.stats().redis!.available);
    assert.equal((await st.save(k, blocks(src, pick(rng, 40)))).tiers, { redis: 'stored' });
    assert.is(await st.lookup([k]), 1);
    await st.close();
    await spare.stop();
    src.release();
  });

  s('namespaces keep tenants apart in one Redis; the key prefix separates deployments', async () => {
    const a = await open({ namespace: 'a' });
    const b = await open({ namespace: 'b' });
    const c = await open({ namespace: 'a', redis: { url: server.url, partBytes: PART, keyPrefix: 'other' } });
    const src = hostPool(be, 40);
    await fill(src, 57);
    const rng = new Rng(57);
    const ka = a.keys(prompt(2, 7));
    for (const key of ka) await a.save(key, blocks(src, pick(rng, 40)));
    assert.is(await a.lookup(ka), 2);
    assert.is(await b.lookup(b.keys(prompt(2, 7))), 0);
    assert.is(await c.lookup(ka), 0);
    src.release();
  });
}
s.run();

async function waitFor(cond: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.unreachable('condition not reached in 10 s');
}
