// The store on its embedded default tier, local disk: round trips, longest-prefix lookup,
// LRU by bytes, restart, damaged files, namespaces, a writer killed mid-write, and writes
// that fail (a vanished directory, RLIMIT_FSIZE in a child).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { test as plain } from 'uvu';
import { createBackend } from '../../lib/index.js';
import { chunkSpec, openPrefixStore, type PrefixStore } from '../../lib/store/index.js';
import { payloadOf, refValue } from '../util/chunk-ref.js';
import { forEachBackend } from '../util/backends.js';
import { Rng } from '../util/rng.js';
import { BIG_BLOCK_SIZE, BIG_CHUNK_TOKENS, BIG_FP, bigImage } from './fixtures/big.js';
import { BLOCK_SIZE, CHUNK_TOKENS, FP, assertSameChunk, base, blocks, fill, hostPool, pick, prompt, removeDir, tempDir } from '../util/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const chunkBytes = 4096 + 3 * 2 * 8192;

forEachBackend('store: disk tier', (test, be) => {
  let dir = '';
  const stores: PrefixStore[] = [];
  const open = async (extra: Parameters<typeof base>[0] = {}) => {
    const s = await openPrefixStore(base({ disk: { dir, capacityBytes: 16 << 20 }, ...extra }));
    stores.push(s);
    return s;
  };
  test.before.each(() => {
    dir = tempDir('disk');
  });
  test.after.each(async () => {
    for (const s of stores.splice(0)) await s.close();
    removeDir(dir);
  });

  test('save then load is byte-exact, into other blocks; files are named by their keys', async () => {
    const s = await open();
    const rng = new Rng(31);
    const src = hostPool(be(), 40);
    const dst = hostPool(be(), 40);
    const image = await fill(src, 31);
    const keys = s.keys(prompt(3));
    const from = keys.map(() => pick(rng, 40));
    for (const [i, k] of keys.entries()) assert.equal((await s.save(k, blocks(src, from[i]))).tiers, { disk: 'stored' });
    assert.equal((await s.save(keys[0], blocks(src, from[0]))).tiers, { disk: 'present' });
    assert.equal(readdirSync(dir).sort(), keys.map((k) => `${k}.kvc`).sort());
    for (const [i, k] of keys.entries()) {
      const into = blocks(dst, pick(rng, 40));
      const r = await s.load(k, into);
      assert.ok(r.ok && r.tier === 'disk' && r.bytes === chunkBytes, JSON.stringify(r));
      await assertSameChunk(into, image, from[i], `chunk ${i}`);
    }
    assert.is(s.stats().loads.hits, 3);
    assert.ok(s.readBandwidth()! > 0 && s.readBandwidth('disk')! > 0);
    src.release();
    dst.release();
  });

  test('the engine path: a load into host blocks, then a host -> device copy once it is ok', async () => {
    const s = await open();
    const b = be();
    const rng = new Rng(39);
    const src = hostPool(b, 40);
    const staging = hostPool(b, 12);
    const image = await fill(src, 39);
    const dev = b.createPool({ tier: 'device', numBlocks: 24, numKvHeads: FP.numKvHeads, headDim: FP.headDim, blockSize: BLOCK_SIZE, dtype: FP.dtype });
    const [k] = s.keys(prompt(1, 9));
    const from = pick(rng, 40);
    await s.save(k, blocks(src, from));
    const hostIds = pick(rng, 12);
    const devIds = pick(rng, 24);
    const r = await s.load(k, blocks(staging, hostIds));
    assert.ok(r.ok);
    const pairs = new Int32Array(2 * hostIds.length);
    hostIds.forEach((h, i) => pairs.set([h, devIds[i]], 2 * i));
    await b.copyBlocks(staging, dev, pairs);
    await assertSameChunk(blocks(dev, devIds), image, from, 'device blocks');
    for (const p of [src, staging, dev]) p.release();
  });

  test('lookup: the longest stored prefix; a hit ending mid-prompt; a gap stops it', async () => {
    const s = await open();
    const src = hostPool(be(), 40);
    await fill(src, 32);
    const rng = new Rng(32);
    const a = s.keys(prompt(5, 1));
    for (const k of a.slice(0, 3)) await s.save(k, blocks(src, pick(rng, 40)));
    assert.is(await s.lookup(a), 3);
    assert.is(await s.lookup(a.slice(0, 2)), 2);
    assert.is(await s.lookup([]), 0);
    const b = s.keys(Int32Array.from([...prompt(2, 1), ...prompt(3, 9)]));
    assert.is(b[1], a[1]);
    assert.is(await s.lookup(b), 2, 'shares two chunks with a');
    await s.save(a[4], blocks(src, pick(rng, 40)));
    assert.is(await s.lookup(a), 3, 'chunk 3 is missing: chunk 4 does not count');
    const st = s.stats();
    assert.is(st.lookups, 5);
    assert.is(st.lookupHits, 3 + 2 + 0 + 2 + 3);
    src.release();
  });

  test('LRU by bytes: the least recently used go first; a load refreshes', async () => {
    const s = await open({ disk: { dir, capacityBytes: 3 * chunkBytes } });
    const src = hostPool(be(), 40);
    await fill(src, 33);
    const rng = new Rng(33);
    const k = s.keys(prompt(6, 2));
    for (const key of k.slice(0, 3)) await s.save(key, blocks(src, pick(rng, 40)));
    assert.ok((await s.load(k[0], blocks(src, pick(rng, 40)))).ok);
    await s.save(k[3], blocks(src, pick(rng, 40)));
    await s.tier('disk')!.settle();
    assert.equal(readdirSync(dir).sort(), [k[0], k[2], k[3]].map((x) => `${x}.kvc`).sort(), 'k1 was least recently used');
    const st = s.stats().disk!;
    assert.is(st.bytes, 3 * chunkBytes);
    assert.is(st.evictions, 1);
    const r = await s.load(k[1], blocks(src, pick(rng, 40)));
    assert.ok(!r.ok && r.fault === 'missing' && r.tried.length === 0);
    src.release();
  });

  test('the index is rebuilt at start: chunks survive a restart, in LRU order, and temp files of dead writers are removed', async () => {
    const s1 = await open();
    const src = hostPool(be(), 40);
    const image = await fill(src, 34);
    const rng = new Rng(34);
    const k = s1.keys(prompt(3, 3));
    const from = k.map(() => pick(rng, 40));
    for (const [i, key] of k.entries()) await s1.save(key, blocks(src, from[i]));
    await s1.close();
    // Oldest first: k2, k0, k1.
    const t = Date.now() / 1000;
    utimesSync(path.join(dir, `${k[2]}.kvc`), t - 300, t - 300);
    utimesSync(path.join(dir, `${k[0]}.kvc`), t - 200, t - 200);
    utimesSync(path.join(dir, `${k[1]}.kvc`), t - 100, t - 100);
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    writeFileSync(path.join(dir, `.tmp.${k[0]}.${dead}.0`), 'partial');
    writeFileSync(path.join(dir, `.tmp.${k[1]}.${process.pid}.99`), 'a live writer');
    writeFileSync(path.join(dir, 'unrelated.txt'), 'left alone');

    const s2 = await open({ disk: { dir, capacityBytes: 2 * chunkBytes } });
    await s2.tier('disk')!.settle();
    const st = s2.stats().disk!;
    assert.is(st.staleTempFiles, 1);
    assert.is(st.recovered, 2, 'the capacity is now two chunks: the oldest gives way');
    assert.equal(s2.tier('disk')!.keys(), [k[0], k[1]]);
    assert.ok(readdirSync(dir).includes(`.tmp.${k[1]}.${process.pid}.99`), "a live process's temp file stays");
    assert.ok(readdirSync(dir).includes('unrelated.txt'));
    assert.not.ok(readdirSync(dir).includes(`${k[2]}.kvc`));
    assert.is(await s2.lookup(k), 2);
    for (const i of [0, 1]) {
      const into = blocks(src, pick(rng, 40));
      assert.ok((await s2.load(k[i], into)).ok);
      await assertSameChunk(into, image, from[i], `chunk ${i} after the restart`);
    }
    src.release();
  });

  test('a damaged file is a miss: counted, logged, listed, removed; saving again repairs it', async () => {
    const events: string[] = [];
    const s = await open({ log: (e) => events.push(`${e.level} ${e.event} ${e.fault}`) });
    const src = hostPool(be(), 40);
    const image = await fill(src, 35);
    const rng = new Rng(35);
    const [k] = s.keys(prompt(1, 4));
    const from = pick(rng, 40);
    await s.save(k, blocks(src, from));
    const file = path.join(dir, `${k}.kvc`);
    const bytes = readFileSync(file);
    bytes[5000] ^= 0xff;
    writeFileSync(file, bytes);
    const r = await s.load(k, blocks(src, pick(rng, 40)));
    assert.ok(!r.ok);
    assert.is(r.ok ? '' : r.fault, 'payload-checksum');
    assert.equal(r.ok ? [] : r.tried, ['disk']);
    assert.is(s.stats().faults['payload-checksum'], 1);
    assert.is(s.stats().loads.misses, 1);
    assert.equal(events, ['warn load-refused payload-checksum']);
    const failed = s.takeFailedLoads();
    assert.is(failed.length, 1);
    assert.is(failed[0].key, k);
    assert.match(failed[0].message, /payload-checksum: the payload does not match the header's checksum/);
    assert.equal(s.takeFailedLoads(), []);
    await s.tier('disk')!.settle();
    assert.equal(readdirSync(dir), [], 'the damaged file is gone');
    assert.is(await s.lookup([k]), 0);
    assert.equal((await s.save(k, blocks(src, from))).tiers, { disk: 'stored' });
    const into = blocks(src, pick(rng, 40));
    assert.ok((await s.load(k, into)).ok);
    await assertSameChunk(into, image, from, 'after the repair');
    src.release();
  });

  test('every kind of damaged or foreign file is a miss, counted by its fault, never loaded', async () => {
    const s = await open();
    const src = hostPool(be(), 40);
    const image = await fill(src, 38);
    const rng = new Rng(38);
    const k = s.keys(prompt(2, 8));
    const from = pick(rng, 40);
    const payload = payloadOf(image, s.spec.blockBytes, from);
    const good = refValue(s.spec, k[0], payload);
    const other = chunkSpec({ ...FP, architecture: 'another-model' }, BLOCK_SIZE, CHUNK_TOKENS);
    const flip = (at: number) => {
      const c = Buffer.from(good);
      c[at] ^= 0x40;
      return c;
    };
    const cases: [Buffer, string][] = [
      [flip(4096 + 777), 'payload-checksum'],
      [good.subarray(0, good.length - 1), 'truncated'],
      [refValue(s.spec, k[0], payload, { magic: 'XXXXXXXX' }), 'magic'],
      [refValue(s.spec, k[0], payload, { version: 9 }), 'version'],
      [refValue(s.spec, k[0], payload, { fingerprint: Buffer.alloc(32, 3) }), 'fingerprint'],
      [refValue(s.spec, k[0], payload, { dtype: 0 }), 'dtype'],
      [refValue(other, k[0], payload), 'fingerprint'],
      [refValue(s.spec, k[1], payload), 'key'],
    ];
    for (const [i, [bytes, fault]] of cases.entries()) {
      // A file appears under the key's name: the store finds it at the next start.
      await s.close();
      writeFileSync(path.join(dir, `${k[0]}.kvc`), bytes);
      const s2 = await open();
      assert.is(await s2.lookup([k[0]]), 1);
      const into = blocks(src, pick(rng, 40));
      const r = await s2.load(k[0], into);
      assert.ok(!r.ok, `case ${i} (${fault}) loaded`);
      assert.is(r.ok ? '' : r.fault, fault, `case ${i}: ${r.ok ? '' : r.message}`);
      assert.is(s2.stats().faults[fault as 'magic'], 1);
      assert.is(s2.stats().loads.misses, 1);
      assert.is(s2.takeFailedLoads()[0].fault, fault);
      assert.is(await s2.lookup([k[0]]), 0, 'the refused file left the store');
      await s2.close();
    }
    src.release();
  });

  test('namespaces keep tenants apart in one directory', async () => {
    const a = await open({ namespace: 'tenant-a' });
    const b = await open({ namespace: 'tenant-b' });
    const src = hostPool(be(), 40);
    await fill(src, 36);
    const rng = new Rng(36);
    const ka = a.keys(prompt(2, 5));
    const kb = b.keys(prompt(2, 5));
    assert.not.equal(ka[0], kb[0]);
    for (const k of ka) await a.save(k, blocks(src, pick(rng, 40)));
    assert.is(await a.lookup(ka), 2);
    assert.is(await b.lookup(kb), 0, 'same tokens, another tenant: nothing');
    // Even a key copied from tenant a's chain loads only what tenant a stored under it: the
    // key is what is verified, and tenant b's own chain never produces it.
    src.release();
  });

  test('a write that fails (the directory vanished, or a file took its place) is counted, not thrown', async () => {
    const events: string[] = [];
    const s = await open({ log: (e) => events.push(`${e.event} ${e.tier}`) });
    const src = hostPool(be(), 40);
    await fill(src, 37);
    const rng = new Rng(37);
    const k = s.keys(prompt(2, 6));
    rmSync(dir, { recursive: true });
    const r = await s.save(k[0], blocks(src, pick(rng, 40)));
    assert.equal(r.tiers, { disk: 'failed' });
    writeFileSync(dir, 'not a directory');
    const r2 = await s.save(k[1], blocks(src, pick(rng, 40)));
    assert.equal(r2.tiers, { disk: 'failed' });
    assert.is(s.stats().saves.failures, 2);
    assert.equal(events, ['save-failed disk', 'save-failed disk']);
    assert.is(await s.lookup(k), 0);
    assert.is(s.stats().disk!.bytes, 0, 'the failed writes gave their room back');
    rmSync(dir);
    src.release();
  });

  test('bad arguments throw, naming the argument', async () => {
    const s = await open();
    const b = be();
    const src = hostPool(b, 40);
    const [k] = s.keys(prompt(1));
    const dev = b.createPool({ tier: 'device', numBlocks: 8, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
    assert.throws(() => s.load('x', blocks(src, [0, 1, 2, 3, 4, 5])), /load: key must be a chunk key \(64 lowercase hex digits\), got "x"/);
    assert.throws(() => s.load(k, blocks(dev, [0, 1, 2, 3, 4, 5])), /load: pool must be a host-tier pool/);
    assert.throws(() => s.save(k, blocks(src, [0, 1])), /save: blocks has 2 entries, a chunk needs numLayers x blocksPerLayer = 3 x 2 = 6/);
    await s.save(k, blocks(src, [0, 1, 2, 3, 4, 4])).then(
      () => assert.unreachable('saved repeated blocks'),
      (e: Error) => assert.match(e.message, /writeFile: blocks\[5\] = 4 repeats blocks\[4\]/),
    );
    await s.lookup(['nope']).then(
      () => assert.unreachable('lookup of a bad key'),
      (e: Error) => assert.match(e.message, /lookup: keys\[0\] is not a chunk key/),
    );
    src.release();
    dev.release();
  });
});

plain('store: opening on a file or an unwritable path is a clear error', async () => {
  const dir = tempDir('open');
  const file = path.join(dir, 'a-file');
  writeFileSync(file, 'x');
  await openPrefixStore(base({ disk: { dir: file, capacityBytes: 1 << 20 } })).then(
    () => assert.unreachable('opened on a file'),
    (e: Error) => assert.is(e.message, `prefix store: disk.dir ${file} exists and is not a directory`),
  );
  await openPrefixStore(base({ disk: { dir: path.join(file, 'sub'), capacityBytes: 1 << 20 } })).then(
    () => assert.unreachable('opened under a file'),
    (e: Error) => assert.match(e.message, /prefix store: cannot use disk.dir .*a-file\/sub: ENOTDIR/),
  );
  await openPrefixStore(base({ disk: false })).then(
    () => assert.unreachable('opened with no tier'),
    (e: Error) => assert.is(e.message, 'openPrefixStore: every tier is disabled; enable memory, disk or redis'),
  );
  removeDir(dir);
});

function child(args: string[], prefix: string[] = []): ReturnType<typeof spawn> {
  const cmd = [...prefix, process.execPath, '--import', 'tsx', path.join(here, 'fixtures', 'writer.ts'), ...args];
  return spawn(cmd[0], cmd.slice(1), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
}

plain('kill -9 of a writer mid-write leaves no visible partial chunk, and the next start cleans up', async () => {
  const dir = tempDir('kill');
  const proc = child(['loop', dir]);
  try {
    await killMidWrite(dir, proc);
  } finally {
    proc.kill('SIGKILL');
    removeDir(dir);
  }
});

async function killMidWrite(dir: string, proc: ReturnType<typeof child>): Promise<void> {
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  // Wait for two stored chunks, then for the next chunk's temp file, then kill.
  const deadline = Date.now() + 60_000;
  let tempSeen = false;
  while (Date.now() < deadline) {
    if ((out.match(/^stored /gm) ?? []).length >= 2 && readdirSync(dir).some((n) => n.startsWith('.tmp.'))) {
      proc.kill('SIGKILL');
      tempSeen = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await exited;
  assert.ok(tempSeen, `the writer never reached a third chunk: ${out}`);
  const names = readdirSync(dir);
  const temps = names.filter((n) => n.startsWith('.tmp.'));
  const chunks = names.filter((n) => n.endsWith('.kvc'));
  assert.ok(temps.length >= 1, 'killed mid-write: its temp file is left');
  assert.ok(chunks.length >= 2);

  const be = createBackend({ backend: 'cpu' });
  const s = await openPrefixStore({ fingerprint: BIG_FP, blockSize: BIG_BLOCK_SIZE, chunkTokens: BIG_CHUNK_TOKENS, disk: { dir, capacityBytes: 64 << 20 }, log: () => {} });
  const n = s.spec.blocksPerChunk;
  const pool = be.createPool({ tier: 'host', numBlocks: n, numKvHeads: BIG_FP.numKvHeads, headDim: BIG_FP.headDim, blockSize: BIG_BLOCK_SIZE, dtype: BIG_FP.dtype });
  assert.is(s.stats().disk!.staleTempFiles, temps.length);
  assert.is(s.stats().disk!.recovered, chunks.length);
  assert.not.ok(readdirSync(dir).some((n2) => n2.startsWith('.tmp.')));
  // Every visible chunk is one the writer stored (or the one it was finishing when killed,
  // renamed into place just before), and loads whole and verified.
  const keyOf = (i: number) => s.keys(Int32Array.from({ length: BIG_CHUNK_TOKENS }, (_, t) => t + i * BIG_CHUNK_TOKENS))[0];
  const stored = [...out.matchAll(/^stored (\d+) ([0-9a-f]{64})$/gm)].map((m) => Number(m[1]));
  const last = Math.max(...stored);
  const index = new Map([...stored, last + 1].map((i) => [keyOf(i), i]));
  for (const name of chunks) {
    const key = name.slice(0, 64);
    const i = index.get(key);
    assert.ok(i !== undefined, `${name} is no chunk the writer saved`);
    const r = await s.load(key, { pool, blocks: Int32Array.from({ length: n }, (_, b) => b) });
    assert.ok(r.ok, `chunk ${i}: ${JSON.stringify(r)}`);
    const got = (await pool.read()) as Uint16Array;
    const want = bigImage(s.spec.blockBytes * n, i!);
    for (let e = 0; e < want.length; e += 4099) if (got[e] !== want[e]) assert.unreachable(`chunk ${i} element ${e}`);
  }
  await s.close();
  pool.release();
}

plain('a write past RLIMIT_FSIZE (a full disk) fails and is counted; the writer does not crash', async () => {
  const dir = tempDir('fsize');
  const limit = 1 << 20; // below one 4 MiB chunk, above anything else the child writes
  const prefix = spawnSync('prlimit', ['--version']).status === 0 ? ['prlimit', `--fsize=${limit}`] : ['sh', '-c', `ulimit -f ${limit / 512} && exec "$0" "$@"`];
  const proc = child(['once', dir], prefix);
  try {
    await fullDisk(dir, proc);
  } finally {
    proc.kill('SIGKILL');
    removeDir(dir);
  }
});

async function fullDisk(dir: string, proc: ReturnType<typeof child>): Promise<void> {
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  assert.is(code, 0, `the writer exited with ${code}: ${err}`);
  const report = JSON.parse(out.trim().split('\n').pop()!);
  assert.equal(report.result.tiers, { disk: 'failed' });
  assert.is(report.stats.failures, 1);
  assert.is(report.disk.chunks, 0);
  assert.is(report.disk.bytes, 0);
  assert.equal(readdirSync(dir), [], 'the temp file was removed');
}

plain.run();
