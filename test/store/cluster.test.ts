// The Redis tier on a real Redis Cluster (three masters on loopback): a chunk's parts live
// in one slot, so its MULTI write and MGET read work on any shard, and chunks spread over
// the shards. Skipped with the reason printed when redis-server is not installed.
import { createClient, createCluster } from '@redis/client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createBackend } from '../../lib/index.js';
import { openPrefixStore, type RedisCommandClient } from '../../lib/store/index.js';
import { RedisClusterServers, printRedisSkip, redisSkipReason } from '../../scripts/redis-server.js';
import { Rng } from '../util/rng.js';
import { assertSameChunk, base, blocks, fill, hostPool, pick, prompt } from '../util/store.js';

const s = suite('store: redis cluster');
const why = redisSkipReason();
if (why) {
  printRedisSkip(why);
  s.skip('redis cluster', () => {});
} else {
  s('chunks written and read through a cluster client, spread over the shards, each within one slot', async () => {
    const servers = await RedisClusterServers.start(3);
    const cluster = createCluster({ rootNodes: [{ url: servers.rootUrl }] });
    cluster.on('error', () => {});
    try {
      await cluster.connect();
      const store = await openPrefixStore(base({ redis: { client: cluster as unknown as RedisCommandClient, partBytes: 16384 } }));
      const be = createBackend({ backend: 'cpu' });
      const src = hostPool(be, 40);
      const dst = hostPool(be, 40);
      const image = await fill(src, 61);
      const rng = new Rng(61);
      const k = store.keys(prompt(12, 8));
      const from = k.map(() => pick(rng, 40));
      for (const [i, key] of k.entries()) assert.equal((await store.save(key, blocks(src, from[i]))).tiers, { redis: 'stored' });
      assert.is(await store.lookup(k), 12);
      for (const [i, key] of k.entries()) {
        const into = blocks(dst, pick(rng, 40));
        const r = await store.load(key, into);
        assert.ok(r.ok && r.tier === 'redis', JSON.stringify(r));
        await assertSameChunk(into, image, from[i], `chunk ${i}`);
      }
      // Per shard: whole chunks only (4 parts each), and more than one shard used.
      let shards = 0;
      for (const node of servers.nodes) {
        const c = createClient({ url: node.url });
        await c.connect();
        const names = await c.keys('kvcake:c1:*');
        c.destroy();
        const perChunk = new Map<string, number>();
        for (const n of names) perChunk.set(n.slice(0, n.lastIndexOf(':')), (perChunk.get(n.slice(0, n.lastIndexOf(':'))) ?? 0) + 1);
        for (const [chunk, parts] of perChunk) assert.is(parts, 4, `${chunk} has ${parts} parts on one shard`);
        if (names.length > 0) shards++;
      }
      assert.ok(shards > 1, `12 chunks landed on ${shards} shard(s)`);
      await store.close();
      src.release();
      dst.release();
    } finally {
      await cluster.close().catch(() => {});
      await servers.stop();
    }
  });
}
s.run();
