import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { annotatePrefixHits, ChunkLru } from '../../lib/workload/prefix.js';
import { chainHashes, chunkHashesFromTokens } from '../../lib/workload/hash.js';
import { synthetic } from '../../lib/workload/synthetic.js';
import type { Request } from '../../lib/contract/request.js';
import { mulberry32 } from '../../lib/workload/rng.js';

function req(id: string, arrival: number, ids: string[]): Request {
  return { id, arrival, promptLen: ids.length * 16, maxNewTokens: 1, prefix: { chunkTokens: 16, chunkHashes: chainHashes(ids), storedChunks: 0 } };
}
const stored = (rs: Request[]) => rs.map((r) => r.prefix?.storedChunks);

test('chained hashes: key_i names the whole prefix, and the fingerprint separates models', () => {
  const a = chainHashes(['x', 'y', 'z']);
  const b = chainHashes(['x', 'q', 'z']);
  assert.is(a.length, 3);
  assert.is(a[0], b[0]);
  assert.not.equal(a[1], b[1]);
  assert.not.equal(a[2], b[2], 'same chunk after a different prefix is a different key');
  assert.ok(a.every((h) => /^[0-9a-f]{64}$/.test(h)), 'the full 256-bit SHA-256');
  assert.not.equal(chainHashes(['x'], 'llama-2-7b')[0], chainHashes(['x'], 'llama-3.1-8b')[0]);
  assert.equal(chainHashes(['x', 'y', 'z']), a, 'deterministic');
});

test('token-id hashes: one per full chunk, shared exactly on shared chunks', () => {
  const t1 = Int32Array.from({ length: 100 }, (_, i) => i);
  const t2 = Int32Array.from(t1);
  t2[70] = 99999;
  const h1 = chunkHashesFromTokens(t1, 32);
  const h2 = chunkHashesFromTokens(t2, 32);
  assert.is(h1.length, 3);
  assert.equal(h1.slice(0, 2), h2.slice(0, 2));
  assert.not.equal(h1[2], h2[2]);
  // A subarray view hashes its own bytes, not its buffer's.
  assert.equal(chunkHashesFromTokens(t1.subarray(32), 32)[0], chunkHashesFromTokens(Int32Array.from(t1.subarray(32, 64)), 32)[0]);
  assert.throws(() => chunkHashesFromTokens(t1, 0), /chunkTokens must be an integer > 0, got 0/);
  assert.throws(() => chunkHashesFromTokens(Int32Array.of(1, -1), 2), /token 1 = -1 is not a token id/);
});

test('LRU store: evicts the least recently used, touch refreshes', () => {
  const lru = new ChunkLru(2);
  lru.put('a');
  lru.put('b');
  assert.ok(lru.touch('a'));
  lru.put('c');
  assert.ok(lru.has('a') && lru.has('c') && !lru.has('b'));
  assert.not.ok(lru.touch('b'));
  assert.is(lru.size, 2);
  const none = new ChunkLru(0);
  none.put('a');
  assert.is(none.size, 0);
  assert.throws(() => new ChunkLru(-1), /capacity must be an integer >= 0, got -1/);
});

test('LRU store agrees with a naive list model under random churn', () => {
  const rand = mulberry32(123);
  for (const cap of [1, 3, 17]) {
    const lru = new ChunkLru(cap);
    let model: string[] = []; // front = least recent
    for (let i = 0; i < 5000; i++) {
      const key = `k${Math.floor(rand() * 40)}`;
      if (rand() < 0.5) {
        const present = model.includes(key);
        assert.is(lru.touch(key), present);
        if (present) model = [...model.filter((k) => k !== key), key];
      } else {
        lru.put(key);
        model = [...model.filter((k) => k !== key), key];
        if (model.length > cap) model.shift();
      }
      assert.is(lru.size, model.length);
    }
    for (let k = 0; k < 40; k++) assert.is(lru.has(`k${k}`), model.includes(`k${k}`), `cap ${cap} k${k}`);
  }
});

test('annotatePrefixHits: a hit is the leading run of stored chunks, stored after arrival', () => {
  const reqs = [
    req('a', 0, ['s', 'p', 'a1']),
    req('b', 1, ['s', 'p', 'b1', 'b2']),
    req('c', 2, ['s', 'q']),
    req('d', 3, ['t', 'p']), // 'p' after 't' is a different key: no hit
    { id: 'e', arrival: 4, promptLen: 10, maxNewTokens: 1 } as Request,
  ];
  const out = annotatePrefixHits(reqs, { capacityChunks: 100 });
  assert.equal(stored(out), [0, 2, 1, 0, undefined]);
  assert.equal(stored(reqs), [0, 0, 0, 0, undefined], 'input untouched');
  assert.is(out[4], reqs[4]);
});

test('annotatePrefixHits replays in arrival order whatever the array order', () => {
  const reqs = [req('late', 5, ['s', 'x']), req('early', 1, ['s', 'x'])];
  assert.equal(stored(annotatePrefixHits(reqs, { capacityChunks: 10 })), [2, 0]);
});

test('annotatePrefixHits: capacity bounds the store (LRU over chunks)', () => {
  const reqs = [req('a', 0, ['a', 'b', 'c']), req('z', 1, ['z']), req('a2', 2, ['a', 'b', 'c'])];
  // Capacity 3: z evicts a's first chunk, so a2 misses from the front.
  assert.equal(stored(annotatePrefixHits(reqs, { capacityChunks: 3 })), [0, 0, 0]);
  assert.equal(stored(annotatePrefixHits(reqs, { capacityChunks: 4 })), [0, 0, 3]);
  assert.equal(stored(annotatePrefixHits(reqs, { capacityChunks: 0 })), [0, 0, 0]);
  assert.throws(() => annotatePrefixHits(reqs, { capacityChunks: 1.5 }), /capacityChunks must be an integer >= 0, got 1.5/);
});

test('annotatePrefixHits on synthetic groups: later members hit the shared chunks', () => {
  const reqs = synthetic({ n: 100, rate: 5, promptLen: 2048, outputLen: 8, prefix: { groups: 2, sharedTokens: 1024, chunkTokens: 256 }, seed: 4 });
  const out = annotatePrefixHits(reqs, { capacityChunks: 10_000 });
  const firstOfGroup = new Set<string>();
  for (const r of out) {
    const key = r.prefix!.chunkHashes[0];
    assert.is(r.prefix!.storedChunks, firstOfGroup.has(key) ? 4 : 0);
    firstOfGroup.add(key);
  }
});

test.run();
