// The prefix store: load and save bandwidth per tier, each beside a plain transfer of the
// same bytes in the same run (what the store's verification, scatter into pool blocks and
// atomic writes cost), and how closely the read cap holds a target bandwidth.
//   memory  load: verified scatter of an in-memory value into 512 scattered pool blocks,
//                 vs Buffer.copy of the same values (one memcpy each)
//   disk    load: preadv into the blocks + XXH3-128 check, vs a plain pread of the same
//                 files into contiguous blocks of the same pool on the same native threads,
//                 and vs Node's fs reads; warm (page cache) and cold (pages dropped first)
//           save: temp file + fdatasync + rename, vs fs writeFile + datasync + rename
//   redis   load: MGET of the parts + verified scatter, vs MGET of the same keys alone
//           save: MULTI of SETs of the parts, vs the same MULTI built from one Buffer
// Chunks are Llama-3.1-8B-shaped (32 layers x 8 KV heads x 128, fp16, blocks of 16 tokens,
// 256-token chunks: 32 MiB each), four transfers in flight on both sides.
// Default: 8 chunks (256 MiB) per measurement. --full: 32 chunks (1 GiB).
// KVCAKE_BENCH_STORE_DIR puts the disk tier's directory elsewhere (default: the OS temp dir).
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { open as openFile, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@redis/client';
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createBackend, type BackendKind, type KVPool } from '../../lib/index.js';
import { ChunkIo, openPrefixStore, type ChunkBlocks, type ModelFingerprint, type PrefixStore, type PrefixStoreOptions } from '../../lib/store/index.js';
import { RedisServer, redisSkipReason } from '../../scripts/redis-server.js';

const GB = 1e9;
const FP: ModelFingerprint = { architecture: 'bench-llama-3.1-8b-shape', numLayers: 32, numKvHeads: 8, headDim: 128, dtype: 'fp16' };
const BLOCK_SIZE = 16;
const CHUNK_TOKENS = 256;
const IN_FLIGHT = 4;
const ROUNDS = 3;
const CAPS_GBPS = [7, 25, 56, 100];

const FS_TYPES: Record<number, string> = { 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs', 0x6969: 'nfs' };

/** Runs f(i) for i in [0, n) with `width` in flight; returns wall seconds. */
async function inFlight(n: number, width: number, f: (i: number, lane: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: width }, async (_, lane) => {
      while (next < n) await f(next++, lane);
    }),
  );
  return (performance.now() - t0) / 1000;
}

/** Best of ROUNDS for each op, alternating between them so drift hits both alike. */
async function alternate(ops: (() => Promise<number>)[]): Promise<number[]> {
  const best = ops.map(() => Infinity);
  for (let r = 0; r < ROUNDS; r++) for (const [i, op] of ops.entries()) best[i] = Math.min(best[i], await op());
  return best;
}

function shuffledIds(n: number, count: number, seed: number): Int32Array[] {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const ids = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return Array.from({ length: Math.floor(n / count) }, (_, l) => Int32Array.from(ids.slice(l * count, (l + 1) * count)));
}

export const group: BenchGroup = {
  name: 'store',
  title: 'Prefix store: load and save GB/s per tier beside plain transfers of the same bytes, and the read cap',
  estimate: '60 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = createBackend({ backend: ctx.backend as BackendKind });
    const chunks = ctx.full ? 32 : 8;
    const root = process.env.KVCAKE_BENCH_STORE_DIR || os.tmpdir();
    const work = mkdtempSync(path.join(root, 'kvcake-bench-store-'));
    const fsType = FS_TYPES[statfsSync(work).type] ?? `0x${statfsSync(work).type.toString(16)}`;
    const opts = (extra: Partial<PrefixStoreOptions>): PrefixStoreOptions => ({ fingerprint: FP, blockSize: BLOCK_SIZE, chunkTokens: CHUNK_TOKENS, ioThreads: IN_FLIGHT, log: () => {}, ...extra });

    const probe = await openPrefixStore(opts({ memory: { capacityBytes: 1 } }));
    const spec = probe.spec;
    await probe.close();
    const per = spec.blocksPerChunk;
    const bytes = chunks * spec.valueBytes;
    const geo = { numKvHeads: FP.numKvHeads, headDim: FP.headDim, blockSize: BLOCK_SIZE, dtype: FP.dtype };
    const src = be.createPool({ tier: 'host', numBlocks: per, ...geo });
    const dst = be.createPool({ tier: 'host', numBlocks: per * IN_FLIGHT, ...geo });
    const srcImage = new Uint16Array(src.bytes / 2);
    for (let i = 0; i < srcImage.length; i++) srcImage[i] = (i * 2654435761) >>> 16;
    await src.write(srcImage);
    const srcBlocks: ChunkBlocks = { pool: src, blocks: Int32Array.from({ length: per }, (_, i) => i) };
    const lanes = shuffledIds(per * IN_FLIGHT, per, 7).map((ids): ChunkBlocks => ({ pool: dst, blocks: ids }));
    const keys = (tag: number) => Array.from({ length: chunks }, (_, i) => probe.keys(Int32Array.from({ length: CHUNK_TOKENS }, (_, t) => t + CHUNK_TOKENS * (i + 1000 * tag)))[0]);
    const loadAll = (s: PrefixStore, ks: string[]) =>
      inFlight(chunks, IN_FLIGHT, async (i, lane) => {
        const r = await s.load(ks[i], lanes[lane]);
        if (!r.ok) throw new Error(`store bench: load missed: ${r.message}`);
      });
    const saveAll = (s: PrefixStore, ks: string[]) => inFlight(chunks, IN_FLIGHT, (i) => s.save(ks[i], srcBlocks));
    const gbps = (seconds: number) => bytes / seconds / GB;

    ctx.progress(`${chunks} chunks of ${(spec.valueBytes / 2 ** 20).toFixed(1)} MiB, ${per} blocks of ${spec.blockBytes / 1024} KiB each; dir ${work} (${fsType})`);
    const rows: Record<string, unknown>[] = [];
    const heads: Headline[] = [];
    const row = (tier: string, op: string, ours: number, plain: number, baseline: string) => {
      rows.push({ tier, op, 'store GB/s': gbps(ours), 'plain GB/s': gbps(plain), 'store/plain': plain / ours, plain: baseline });
      return plain / ours;
    };
    const stores: PrefixStore[] = [];
    let server: RedisServer | undefined;
    try {
      // Memory tier.
      ctx.progress('memory tier');
      const mem = await openPrefixStore(opts({ memory: { capacityBytes: 2 * bytes } }));
      stores.push(mem);
      const mk = keys(1);
      let memSave = Infinity;
      for (let r = 0; r < ROUNDS; r++) {
        for (const k of mk) mem.tier('memory')!.delete(k);
        memSave = Math.min(memSave, await saveAll(mem, mk));
      }
      const gio = new ChunkIo({ threads: 1 });
      const { value: memValue } = await gio.gather(srcBlocks, spec, mk[0]);
      gio.close();
      const sink = Buffer.allocUnsafe(spec.valueBytes * IN_FLIGHT);
      const [memLoad, memcpy] = await alternate([
        () => loadAll(mem, mk),
        async () => {
          const t0 = performance.now();
          for (let i = 0; i < chunks; i++) memValue.copy(sink, (i % IN_FLIGHT) * spec.valueBytes);
          return (performance.now() - t0) / 1000;
        },
      ]);
      let fresh = Infinity;
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now();
        const keep: Buffer[] = [];
        for (let i = 0; i < chunks; i++) {
          const b = Buffer.allocUnsafeSlow(spec.valueBytes);
          memValue.copy(b);
          keep.push(b);
        }
        fresh = Math.min(fresh, (performance.now() - t0) / 1000);
      }
      row('memory', 'load', memLoad, memcpy, 'Buffer.copy of the values');
      row('memory', 'save', memSave, fresh, 'copy of the values into new Buffers');

      // Disk tier.
      ctx.progress('disk tier: saves');
      const dir = path.join(work, 'disk');
      const disk = await openPrefixStore(opts({ disk: { dir, capacityBytes: 4 * bytes } }));
      stores.push(disk);
      const dk = keys(2);
      const files = dk.map((k) => path.join(dir, `${k}.kvc`));
      await saveAll(disk, dk);
      const value = await readFile(files[0]);
      let saveRound = 0;
      const [diskSave, plainSave] = await alternate([
        async () => {
          const ks = keys(100 + saveRound++);
          const t = await saveAll(disk, ks);
          for (const k of ks) disk.tier('disk')!.remove(k);
          await disk.tier('disk')!.settle();
          return t;
        },
        async () => {
          const t = await inFlight(chunks, IN_FLIGHT, async (i) => {
            const tmp = path.join(work, `plain-${i}.tmp`);
            const fh = await openFile(tmp, 'w');
            await fh.writeFile(value);
            await fh.datasync();
            await fh.close();
            await rename(tmp, path.join(work, `plain-${i}`));
          });
          await Promise.all(Array.from({ length: chunks }, (_, i) => unlink(path.join(work, `plain-${i}`))));
          return t;
        },
      ]);
      const rawBufs = Array.from({ length: IN_FLIGHT }, () => Buffer.allocUnsafe(spec.valueBytes));
      const plainRead = () =>
        inFlight(chunks, IN_FLIGHT, async (i, lane) => {
          const fh = await openFile(files[i], 'r');
          let at = 0;
          while (at < spec.valueBytes) {
            const { bytesRead } = await fh.read(rawBufs[lane], at, spec.valueBytes - at, at);
            if (bytesRead === 0) break;
            at += bytesRead;
          }
          await fh.close();
        });
      const io = new ChunkIo({ threads: IN_FLIGHT });
      // Lane l's plain reads land in the contiguous blocks [l * per, (l + 1) * per) of the
      // same pool the loads scatter into.
      const nativeRead = () => inFlight(chunks, IN_FLIGHT, (i, lane) => io.readPlain(files[i], 4096, dst, lane * per, per));
      const cold = () => files.forEach((f) => io.dropPageCache(f));
      ctx.progress('disk tier: warm and cold loads');
      const [warmLoad, warmNative, warmPlain] = await alternate([() => loadAll(disk, dk), nativeRead, plainRead]);
      const [coldLoad, coldNative, coldPlain] = await alternate([
        () => (cold(), loadAll(disk, dk)),
        () => (cold(), nativeRead()),
        () => (cold(), plainRead()),
      ]);
      io.close();
      const warmRatio = row('disk', 'load, page cache', warmLoad, warmNative, 'pread into contiguous blocks, same threads, no checks');
      row('disk', 'load, page cache', warmLoad, warmPlain, 'fs reads of the files');
      const coldRatio = row('disk', 'load, cold', coldLoad, coldNative, 'pread into contiguous blocks, same threads, no checks');
      row('disk', 'load, cold', coldLoad, coldPlain, 'fs reads of the files');
      row('disk', 'save (fdatasync)', diskSave, plainSave, 'fs writeFile + datasync + rename');
      heads.push({ metric: 'disk load vs a plain pread of the same files (page cache / cold)', value: `${warmRatio.toFixed(2)}x / ${coldRatio.toFixed(2)}x` });

      // Redis tier.
      const why = redisSkipReason();
      if (why) {
        rows.push({ tier: 'redis', op: `skipped: ${why}` });
      } else {
        ctx.progress('redis tier');
        server = await RedisServer.start();
        const redis = await openPrefixStore(opts({ redis: { url: server.url, ttlSeconds: 0, timeoutMs: 60_000 } }));
        stores.push(redis);
        const client = createClient({ url: server.url });
        client.on('error', () => {});
        await client.connect();
        const rk = keys(3);
        await saveAll(redis, rk);
        const parts = Math.ceil(spec.valueBytes / (8 * 2 ** 20));
        const partKeys = (k: string) => Array.from({ length: parts }, (_, p) => `kvcake:c1:{${k}}:${p}`);
        const binary = client.withTypeMapping({ 36: Buffer } as never);
        const [redisLoad, redisPlain] = await alternate([
          () => loadAll(redis, rk),
          () => inFlight(chunks, IN_FLIGHT, (i) => binary.mGet(partKeys(rk[i]))),
        ]);
        let round = 0;
        const [redisSave, redisPlainSave] = await alternate([
          async () => {
            const ks = keys(200 + round);
            const t = await saveAll(redis, ks);
            await client.unlink(ks.flatMap(partKeys));
            return t;
          },
          async () => {
            const ks = keys(300 + round++).map((k) => `plain:${k}`);
            const t = await inFlight(chunks, IN_FLIGHT, async (i) => {
              const m = client.multi();
              for (let p = 0; p < parts; p++) m.set(`${ks[i]}:${p}`, value.subarray(p * 8 * 2 ** 20, (p + 1) * 8 * 2 ** 20));
              await m.exec();
            });
            await client.unlink(ks.flatMap((k) => Array.from({ length: parts }, (_, p) => `${k}:${p}`)));
            return t;
          },
        ]);
        client.destroy();
        const rr = row('redis', 'load', redisLoad, redisPlain, 'MGET of the same parts');
        row('redis', 'save', redisSave, redisPlainSave, 'MULTI of SETs of the parts');
        heads.push({ metric: 'redis load vs MGET of the same parts', value: `${rr.toFixed(2)}x` });
      }
      ctx.table(
        `Store transfers on ${be.name} host pools (${be.deviceName}); ${chunks} x ${(spec.valueBytes / 2 ** 20).toFixed(1)} MiB chunks, ${IN_FLIGHT} in flight; checksum XXH3-128 (${ChunkIo.checksumPath}); dir on ${fsType}`,
        rows,
      );

      // The read cap, on warm disk loads.
      ctx.progress('read cap');
      const capRows: Record<string, unknown>[] = [];
      let worst = 0;
      for (const g of CAPS_GBPS) {
        const cap = (g * 1e9) / 8;
        // A fresh store per cap, so its moving estimate (half-life 1 s of busy time) has
        // seen this rate only; a second of loads lets it settle.
        const capped = await openPrefixStore(opts({ disk: { dir, capacityBytes: 4 * bytes }, readBytesPerSecond: cap }));
        stores.push(capped);
        for (const t0 = performance.now(); performance.now() - t0 < 1000; ) await loadAll(capped, dk);
        const t = await loadAll(capped, dk);
        const got = bytes / t;
        const est = capped.readBandwidth('disk')!;
        await capped.close();
        // What the machine delivers uncapped right now (it drifts on a shared machine): a
        // cap the machine cannot reach is not a test of the cap, nor is one it barely
        // reaches. After a stall (a vCPU descheduled under the hypervisor's steal) the
        // reader makes up the lost bytes only as fast as it beats the cap: at 0.8x the
        // uncapped rate a 1 ms stall takes 4 ms to make up. A cap the store beats by 1.5x
        // is one it can hold.
        const now = bytes / (await loadAll(disk, dk));
        const reachable = cap * 1.5 <= now;
        if (reachable) worst = Math.max(worst, Math.abs(got / cap - 1));
        capRows.push({
          'cap Gbps': g,
          'cap GB/s': cap / GB,
          'measured GB/s': got / GB,
          'measured/cap': got / cap,
          'estimate GB/s': est / GB,
          'estimate/measured': est / got,
          'uncapped now GB/s': now / GB,
          note: reachable ? '' : 'above 2/3 of the uncapped rate',
        });
      }
      ctx.table('Read cap (token bucket, no burst) on warm disk loads', capRows);
      heads.push({ metric: 'read cap: worst |measured / cap - 1| (caps up to 2/3 of the uncapped rate)', value: `${(worst * 100).toFixed(1)}%`, target: '<= 5%', met: worst <= 0.05 });
      ctx.record('store', { chunks, chunkBytes: spec.valueBytes, fsType, checksum: ChunkIo.checksumPath });
    } finally {
      for (const s of stores) await s.close();
      await server?.stop();
      src.release();
      dst.release();
      rmSync(work, { recursive: true, force: true });
    }
    return heads;
  },
};
