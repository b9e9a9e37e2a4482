import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { synthetic } from '../../lib/workload/synthetic.js';
import { mulberry32, gamma } from '../../lib/workload/rng.js';

function gaps(arrivals: number[]): number[] {
  return arrivals.slice(1).map((t, i) => t - arrivals[i]);
}
function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, std: Math.sqrt(v) };
}

test('mulberry32 is seeded, deterministic and uniform in [0, 1)', () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const xs = Array.from({ length: 20000 }, () => a());
  assert.equal(xs.slice(0, 100), Array.from({ length: 100 }, () => b()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const { mean } = meanStd(xs);
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  assert.not.equal(mulberry32(1)(), mulberry32(2)());
});

test('same seed, same requests; different seed, different requests', () => {
  const spec = { n: 200, rate: 4, promptLen: [100, 4000] as [number, number], outputLen: [10, 300] as [number, number], prefix: { groups: 3, sharedTokens: 64, chunkTokens: 32 } };
  assert.equal(synthetic({ ...spec, seed: 7 }), synthetic({ ...spec, seed: 7 }));
  assert.not.equal(synthetic({ ...spec, seed: 7 }), synthetic({ ...spec, seed: 8 }));
});

test('Poisson arrivals: mean inter-arrival 1/rate and cv 1 for large n; first arrival at 0', () => {
  const reqs = synthetic({ n: 20001, rate: 5, promptLen: 100, outputLen: 10, seed: 1 });
  assert.is(reqs[0].arrival, 0);
  const { mean, std } = meanStd(gaps(reqs.map((r) => r.arrival)));
  assert.ok(Math.abs(mean - 0.2) / 0.2 < 0.03, `mean gap ${mean}`);
  assert.ok(Math.abs(std / mean - 1) < 0.05, `cv ${std / mean}`);
  for (let i = 1; i < reqs.length; i++) assert.ok(reqs[i].arrival >= reqs[i - 1].arrival);
});

for (const cv of [0.5, 2, 4]) {
  test(`gamma arrivals keep the rate and reach cv ${cv}`, () => {
    const reqs = synthetic({ n: 40001, rate: 2, arrival: 'gamma', cv, promptLen: 100, outputLen: 10, seed: 3 });
    const { mean, std } = meanStd(gaps(reqs.map((r) => r.arrival)));
    assert.ok(Math.abs(mean - 0.5) / 0.5 < 0.05, `mean gap ${mean}`);
    assert.ok(Math.abs(std / mean - cv) / cv < 0.08, `cv ${std / mean}`);
  });
}

test('gamma sampler: mean shape*scale for shape < 1 and > 1', () => {
  const rand = mulberry32(9);
  for (const shape of [0.25, 1, 3.5]) {
    const xs = Array.from({ length: 40000 }, () => gamma(rand, shape, 2));
    const { mean } = meanStd(xs);
    assert.ok(Math.abs(mean - 2 * shape) / (2 * shape) < 0.04, `shape ${shape}: mean ${mean}`);
  }
});

test('lengths: fixed, or uniform over an inclusive range', () => {
  const fixed = synthetic({ n: 50, rate: 1, promptLen: 123, outputLen: 7 });
  assert.ok(fixed.every((r) => r.promptLen === 123 && r.maxNewTokens === 7));
  const ranged = synthetic({ n: 5000, rate: 1, promptLen: [10, 13], outputLen: [1, 2], seed: 5 });
  const seen = new Set(ranged.map((r) => r.promptLen));
  assert.equal([...seen].sort(), [10, 11, 12, 13]);
  assert.ok(ranged.every((r) => r.maxNewTokens === 1 || r.maxNewTokens === 2));
  assert.equal(new Set(ranged.map((r) => r.id)).size, 5000);
});

test('SLOs are copied onto every request, and absent when not given', () => {
  const reqs = synthetic({ n: 3, rate: 1, promptLen: 10, outputLen: 10, ttftSlo: 2, tpotSlo: 0.05 });
  assert.ok(reqs.every((r) => r.ttftSlo === 2 && r.tpotSlo === 0.05));
  const none = synthetic({ n: 3, rate: 1, promptLen: 10, outputLen: 10 });
  assert.ok(none.every((r) => !('ttftSlo' in r) && !('tpotSlo' in r) && !('prefix' in r)));
});

test('shared-prefix groups: chunk hashes agree exactly on the shared chunks', () => {
  const reqs = synthetic({ n: 300, rate: 10, promptLen: [1300, 3000], outputLen: 10, prefix: { groups: 4, sharedTokens: 1100, chunkTokens: 256 }, seed: 11 });
  const byFirst = new Map<string, string[][]>();
  for (const r of reqs) {
    const p = r.prefix!;
    assert.is(p.chunkTokens, 256);
    assert.is(p.storedChunks, 0);
    assert.is(p.chunkHashes.length, Math.floor(r.promptLen / 256));
    const list = byFirst.get(p.chunkHashes[0]) ?? [];
    list.push([...p.chunkHashes]);
    byFirst.set(p.chunkHashes[0], list);
  }
  assert.is(byFirst.size, 4, 'one distinct first chunk per group');
  const allHashes = new Set<string>();
  for (const group of byFirst.values()) {
    // 1100 shared tokens = 4 whole 256-token chunks; the 5th straddles and is private.
    for (const h of group) assert.equal(h.slice(0, 4), group[0].slice(0, 4));
    const fifth = new Set(group.map((h) => h[4]));
    assert.is(fifth.size, group.length);
    for (const h of group) for (const x of h.slice(4)) {
      assert.not.ok(allHashes.has(x), 'private chunks are unique');
      allHashes.add(x);
    }
  }
});

test('bad spec values name the field and the limit', () => {
  const ok = { n: 1, rate: 1, promptLen: 10, outputLen: 10 };
  assert.throws(() => synthetic({ ...ok, rate: -1 }), /synthetic: rate must be > 0, got -1/);
  assert.throws(() => synthetic({ ...ok, rate: 0 }), /rate must be > 0, got 0/);
  assert.throws(() => synthetic({ ...ok, n: 1.5 }), /n must be an integer >= 0, got 1.5/);
  assert.throws(() => synthetic({ ...ok, promptLen: 0 }), /promptLen must be an integer >= 1/);
  assert.throws(() => synthetic({ ...ok, outputLen: [5, 2] }), /outputLen max must be an integer >= min 5/);
  assert.throws(() => synthetic({ ...ok, arrival: 'gamma', cv: 0 }), /cv must be > 0, got 0/);
  assert.throws(() => synthetic({ ...ok, cv: 2 }), /cv applies only to arrival 'gamma'/);
  assert.throws(() => synthetic({ ...ok, arrival: 'uniform' as 'poisson' }), /arrival must be 'poisson' or 'gamma'/);
  assert.throws(() => synthetic({ ...ok, ttftSlo: 0 }), /ttftSlo must be > 0, got 0/);
  assert.throws(() => synthetic({ ...ok, prefix: { groups: 0, sharedTokens: 0, chunkTokens: 4 } }), /prefix.groups must be an integer >= 1, got 0/);
  assert.throws(() => synthetic({ ...ok, prefix: { groups: 1, sharedTokens: 20, chunkTokens: 4 } }), /prefix.sharedTokens must be an integer in \[0, min promptLen 10\], got 20/);
  assert.throws(() => synthetic({ ...ok, prefix: { groups: 1, sharedTokens: 0, chunkTokens: 0 } }), /prefix.chunkTokens must be an integer >= 1, got 0/);
  assert.equal(synthetic({ ...ok, n: 0 }), []);
});

test.run();
