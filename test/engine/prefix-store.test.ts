// The engine with a prefix store: prompts whose prefix KV was saved by an earlier request
// load it (Cake, load-only) and give exactly the tokens of the model run alone (Model.generate,
// no store), whatever the tier (memory, disk, Redis), the hit (partial, ending mid-prompt, the
// whole prompt), the chunk and block sizes, and the split (every k). A chunk that is damaged,
// foreign or gone is a miss that is computed: the output stays right. Redis killed mid-run,
// writes that fail, and a second process sharing one Redis.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, engineFingerprint, modelIdOfDummy, type Engine, type EngineOptions } from '../../lib/engine/index.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import { openPrefixStore } from '../../lib/store/index.js';
import { RedisServer, printRedisSkip, redisSkipReason } from '../../scripts/redis-server.js';
import { mulberry32 } from '../../lib/workload/rng.js';
import { TINY } from '../util/tiny-model.js';
import { removeDir, tempDir } from '../util/store.js';

// 3 layers, GQA 4, head dim 64, vocab 509.
const CONFIG = { ...TINY[1].config, torch_dtype: 'float32' };
const SEED = 11;
const BLOCK = 2 * 1 * 64 * 16 * 4;
const quiet = () => {};

let ref: Model;
async function reference(prompt: number[], maxTokens: number): Promise<number[]> {
  ref ??= await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: SEED }, { dtype: 'fp32' });
  return (await ref.generate(prompt, { maxTokens, kvDtype: 'fp32', stopTokenIds: [] })).tokenIds;
}

function tokens(seed: number, n: number): number[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(rng() * 509));
}

async function engineWith(store: EngineOptions['store'], o: Partial<EngineOptions> = {}): Promise<Engine> {
  return createEngine({ model: { config: CONFIG, dummySeed: SEED }, backend: 'cpu', dtype: 'fp32', deviceKvBytes: 300 * BLOCK * 3, hostKvBytes: 300 * BLOCK, maxBatchedTokens: 64, policy: 'cake', store, ...o });
}

/** Runs a prompt and checks it against the reference; returns its cached tokens. */
async function check(engine: Engine, prompt: number[], what: string, maxTokens = 6): Promise<number> {
  const r = await engine.generate(prompt, { maxTokens, ignoreEos: true }).result;
  assert.equal(r.tokenIds, await reference(prompt, maxTokens), what);
  return r.stats.cachedTokens;
}

/** Waits until the engine's saves have reached the store. */
async function settled(engine: Engine): Promise<void> {
  for (let i = 0; i < 2000 && engine.stats().transfersInFlight > 0; i++) await new Promise((r) => setTimeout(r, 5));
}

const mem = (chunkTokens = 32) => ({ chunkTokens, memory: { capacityBytes: 64 << 20 }, disk: false as const, log: quiet });

// Cake's planner may find computing a tiny model's chunks cheaper than loading them; tests
// that need chunks loaded use load-only, or pin Cake's split.
test('memory tier: a stored prompt loads and gives the reference tokens; partial hits, a hit ending mid-prompt, a whole stored prompt', async () => {
  const engine = await engineWith(mem(), { policy: 'load-only' });
  const base = tokens(1, 150); // 4 full chunks of 32, then 22 tokens
  assert.is(await check(engine, base, 'first run'), 0);
  await settled(engine);
  const again = await check(engine, base, 'second run');
  assert.ok(again > 0 && again % 32 === 0 && again <= 128, `cached ${again}`);
  // Shares the first 2 chunks, then differs: at most 64 tokens can come from the store.
  const partial = [...base.slice(0, 70), ...tokens(2, 60)];
  const p = await check(engine, partial, 'partial hit');
  assert.ok(p <= 64, `partial hit cached ${p}`);
  // Exactly 4 chunks: the whole prompt is stored; its last token is recomputed for logits.
  const whole = base.slice(0, 128);
  await check(engine, whole, 'whole prompt, first');
  await settled(engine);
  const w = await check(engine, whole, 'whole prompt, stored');
  assert.ok(w > 0, 'the whole stored prompt loaded nothing');
  // A prompt shorter than a chunk has no key: nothing to look up.
  assert.is(await check(engine, base.slice(0, 20), 'short prompt'), 0);
  const st = engine.stats();
  assert.is(st.prefixStore!.loadFailures, 0);
  assert.ok(st.prefixStore!.saves > 0 && st.totals.savedBytes > 0);
  assert.ok(st.totals.cachedTokens >= again + w);
  await engine.close();
});

test('Cake split at every k gives the reference tokens and loads exactly the chunks past k', async () => {
  const prompt = tokens(3, 170); // 5 full chunks
  // A store the caller opened with the engine's fingerprint outlives the engines using it.
  const model = await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: SEED }, { dtype: 'fp32' });
  const shared = await openPrefixStore({ fingerprint: engineFingerprint(model, modelIdOfDummy(model.config, SEED)), blockSize: 16, chunkTokens: 32, memory: { capacityBytes: 64 << 20 }, disk: false, log: quiet });
  model.release();
  const filler = await engineWith(shared);
  await check(filler, prompt, 'filling the shared store');
  await settled(filler);
  await filler.close();
  for (let k = 0; k <= 5; k++) {
    const engine = await engineWith(shared, { cakeSplit: k });
    const cached = await check(engine, prompt, `split ${k}`);
    assert.is(cached, (5 - k) * 32, `split ${k}: cached tokens`);
    await engine.close();
  }
  await shared.close();
});

test('chunk and block sizes: chunks of 3 blocks, blocks of 32, prompts off every boundary', async () => {
  for (const [chunkTokens, blockSize] of [
    [48, 16],
    [64, 32],
    [32, 32],
  ] as const) {
    const engine = await engineWith(mem(chunkTokens), { policy: 'load-only', blockSize, deviceKvBytes: 300 * BLOCK * 3 * 2 });
    for (const n of [chunkTokens * 2 + 1, chunkTokens * 3 - 1, chunkTokens * 2 + blockSize / 2]) {
      const prompt = tokens(n, n);
      await check(engine, prompt, `${chunkTokens}/${blockSize} n=${n} first`);
      await settled(engine);
      const c = await check(engine, prompt, `${chunkTokens}/${blockSize} n=${n} stored`);
      assert.ok(c % chunkTokens === 0 && c > 0, `${chunkTokens}/${blockSize} n=${n}: cached ${c}`);
    }
    await engine.close();
  }
});

test('every prefix policy gives the reference tokens; concurrent requests sharing a prefix each get their own right KV', async () => {
  const shared = tokens(4, 100);
  const prompts = Array.from({ length: 6 }, (_, i) => [...shared, ...tokens(10 + i, 10 + 7 * i)]);
  for (const policy of ['cake', 'load-only', 'layerkv+cake', 'compute-only', 'baseline', 'layerkv'] as const) {
    const engine = await engineWith(mem(), { policy, ...(policy.includes('cake') ? { cakeSplit: 1 } : {}) });
    await check(engine, prompts[0], `${policy}: warm-up`);
    await settled(engine);
    const gens = prompts.map((p) => engine.generate(p, { maxTokens: 5, ignoreEos: true }));
    const results = await Promise.all(gens.map((g) => g.result));
    for (const [i, r] of results.entries()) assert.equal(r.tokenIds, await reference(prompts[i], 5), `${policy}: request ${i}`);
    const cached = results.reduce((n, r) => n + r.stats.cachedTokens, 0);
    if (policy === 'cake' || policy === 'load-only' || policy === 'layerkv+cake') assert.ok(cached > 0, `${policy}: nothing loaded`);
    else assert.is(cached, 0, `${policy} loads nothing`);
    const st = engine.stats();
    assert.is(st.kv.device.usedBlocks, 0);
    assert.is(st.kv.host.usedBlocks, 0);
    await engine.close();
  }
});

test('disk tier: chunks survive a restart; damaged, truncated, foreign and wrong-model files are misses, computed, then saved again', async () => {
  const dir = tempDir('engine-disk');
  try {
    const disk = { chunkTokens: 32, disk: { dir, capacityBytes: 256 << 20 }, log: quiet };
    const prompt = tokens(5, 200); // 6 full chunks
    const first = await engineWith(disk);
    await check(first, prompt, 'first');
    await settled(first);
    await first.close();
    const files = readdirSync(dir).filter((f) => f.endsWith('.kvc')).sort();
    assert.is(files.length, 6);
    // A restart: the new engine finds them all.
    const second = await engineWith(disk, { policy: 'load-only' });
    assert.is(await check(second, prompt, 'after a restart'), 192);
    await second.close();
    // Damage four of them: a flipped payload byte, a truncated file, a wrong magic, and a
    // chunk of another model (other weights, same shapes) under this model's key.
    const keyed = files.map((f) => path.join(dir, f));
    const flip = readFileSync(keyed[1]);
    flip[flip.length - 100] ^= 0x10;
    writeFileSync(keyed[1], flip);
    writeFileSync(keyed[2], readFileSync(keyed[2]).subarray(0, 5000));
    const magic = readFileSync(keyed[3]);
    magic[0] ^= 0xff;
    writeFileSync(keyed[3], magic);
    const otherDir = tempDir('engine-other');
    try {
      const other = await createEngine({ model: { config: CONFIG, dummySeed: SEED + 1 }, backend: 'cpu', dtype: 'fp32', deviceKvBytes: 300 * BLOCK * 3, hostKvBytes: 300 * BLOCK, policy: 'cake', store: { chunkTokens: 32, disk: { dir: otherDir, capacityBytes: 64 << 20 }, log: quiet } });
      await other.generate(prompt, { maxTokens: 2, ignoreEos: true }).result;
      await settled(other);
      await other.close();
      const foreign = readdirSync(otherDir).filter((f) => f.endsWith('.kvc')).sort();
      writeFileSync(keyed[4], readFileSync(path.join(otherDir, foreign[0])));
    } finally {
      removeDir(otherDir);
    }
    const third = await engineWith(disk, { policy: 'load-only' });
    const cached = await check(third, prompt, 'with damaged chunks');
    const st = third.stats().prefixStore!;
    assert.ok(st.loadFailures >= 1, 'no load failed');
    assert.ok(cached < 192, `cached ${cached} with damaged chunks`);
    const faults = Object.entries(st.store.faults).filter(([, n]) => n > 0).map(([f]) => f);
    assert.ok(faults.length >= 1, `faults: ${JSON.stringify(st.store.faults)}`);
    await settled(third);
    // The damaged chunks were computed and saved again: the next run loads every chunk.
    assert.is(await check(third, prompt, 'after the repair'), 192);
    await third.close();
  } finally {
    removeDir(dir);
  }
});

test('a store that cannot write: requests are unaffected, the failures are counted', async () => {
  const dir = tempDir('engine-nowrite');
  const engine = await engineWith({ chunkTokens: 32, disk: { dir, capacityBytes: 64 << 20 }, log: quiet });
  try {
    // The directory vanishes and a file takes its place: every write fails.
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, 'not a directory');
    const prompt = tokens(6, 140);
    await check(engine, prompt, 'write failing');
    await settled(engine);
    assert.ok(engine.stats().prefixStore!.store.saves.failures > 0 || engine.stats().prefixStore!.saveFailures > 0, 'no write failure counted');
    await check(engine, prompt, 'again');
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad store options: another model, a chunk size off the block size', async () => {
  const fp = { architecture: 'not-this-model', numLayers: 3, numKvHeads: 1, headDim: 64, dtype: 'fp32' as const };
  const other = await openPrefixStore({ fingerprint: fp, blockSize: 16, chunkTokens: 32, memory: { capacityBytes: 1 << 20 }, disk: false, log: quiet });
  await createEngine({ model: { config: CONFIG, dummySeed: SEED }, backend: 'cpu', dtype: 'fp32', deviceKvBytes: 100 * BLOCK * 3, store: other }).then(
    () => assert.unreachable('accepted a store of another model'),
    (e: Error) => assert.match(e.message, /createEngine: the store holds chunks of another model \(not-this-model/),
  );
  await other.close();
  await createEngine({ model: { config: CONFIG, dummySeed: SEED }, backend: 'cpu', dtype: 'fp32', deviceKvBytes: 100 * BLOCK * 3, store: { chunkTokens: 40, memory: { capacityBytes: 1 << 20 }, disk: false } }).then(
    () => assert.unreachable('accepted chunkTokens 40 with blocks of 16'),
    (e: Error) => assert.match(e.message, /chunkTokens/),
  );
  await createEngine({ model: { config: CONFIG, dummySeed: SEED }, backend: 'cpu', dtype: 'fp32', deviceKvBytes: 100 * BLOCK * 3, cakeSplit: -1 }).then(
    () => assert.unreachable('accepted cakeSplit -1'),
    (e: Error) => assert.match(e.message, /createEngine: cakeSplit must be an integer >= 0/),
  );
});

test('a request aborted during its lookup ends as aborted and leaves nothing behind', async () => {
  const engine = await engineWith(mem());
  const ac = new AbortController();
  const g = engine.generate(tokens(7, 100), { maxTokens: 4, signal: ac.signal });
  ac.abort();
  const r = await g.result;
  assert.is(r.stats.finishReason, 'abort');
  await check(engine, tokens(7, 100), 'after the abort');
  await engine.close();
});

const why = redisSkipReason();
if (why) {
  printRedisSkip(why);
  test.skip('redis tier: two processes, Redis killed mid-run', () => {});
} else {
  test('redis tier: a second process reuses the first one\'s prefix; Redis killed mid-run falls back to compute', async () => {
    const server = await RedisServer.start();
    try {
      const redis = { url: server.url, timeoutMs: 1000, backoffMs: 100 };
      const prompt = tokens(8, 230); // 7 full chunks
      // Another process computes the prompt and saves its chunks to Redis.
      const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'prefix-store-child.ts');
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', child, server.url, JSON.stringify(prompt)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let s = '';
        p.stdout.on('data', (d) => (s += d));
        p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`child exited ${code}`))));
      });
      const fromChild = JSON.parse(out.trim().split('\n').pop()!) as { tokenIds: number[]; cachedTokens: number };
      assert.is(fromChild.cachedTokens, 0);
      assert.equal(fromChild.tokenIds, await reference(prompt, 6));
      const engine = await engineWith({ chunkTokens: 32, redis, log: quiet }, { policy: 'load-only' });
      assert.ok((await check(engine, prompt, 'second process')) > 0, 'the second process loaded nothing from Redis');
      // Redis dies with a request's loads in flight, then stays down: loads and lookups fail,
      // every chunk is computed, outputs stay right.
      const longer = [...prompt, ...tokens(11, 40)];
      const g = engine.generate(longer, { maxTokens: 6, ignoreEos: true });
      await server.stop();
      assert.equal((await g.result).tokenIds, await reference(longer, 6), 'Redis killed mid-request');
      assert.is(await check(engine, prompt, 'Redis down'), 0);
      await check(engine, tokens(9, 120), 'Redis down, new prompt');
      await engine.close();
    } finally {
      await server.stop();
    }
  });
}

test.run();
