// The Cake oracle: the best single compute/load split, checked by hand and against brute force.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cakeOracle } from '../../lib/sched/cake/oracle.js';
import { mulberry32 } from '../../lib/workload/rng.js';

function bruteForce(compute: number[], load: number[], suffix: number): number {
  let best = Infinity;
  for (let k = 0; k <= compute.length; k++) {
    const c = compute.slice(0, k).reduce((a, b) => a + b, 0);
    const l = load.slice(k).reduce((a, b) => a + b, 0);
    best = Math.min(best, Math.max(c, l));
  }
  return best + suffix;
}

test('hand-worked: compute 1,2,3,4 against flat loads of 2.5', () => {
  // k=0: max(0,10)=10; k=1: max(1,7.5)=7.5; k=2: max(3,5)=5; k=3: max(6,2.5)=6; k=4: 10.
  const compute = [1, 2, 3, 4];
  const r = cakeOracle((i) => compute[i], () => 2.5, 4, 0.5);
  assert.equal(r.split, 2);
  assert.equal(r.time, 5.5);
});

test('slow storage: compute everything; free storage: load everything', () => {
  const slow = cakeOracle((i) => 0.01 * (i + 1), () => 10, 8, 0);
  assert.equal(slow.split, 8);
  assert.ok(Math.abs(slow.time - 0.36) < 1e-12);
  const free = cakeOracle((i) => 0.01 * (i + 1), () => 0, 8, 0.2);
  assert.equal(free.split, 0);
  assert.equal(free.time, 0.2);
});

test('no stored chunks: only the suffix', () => {
  assert.equal(cakeOracle(() => 1, () => 1, 0, 0.3), { split: 0, time: 0.3 });
});

test('ties go to the smaller split (fewer chunks computed)', () => {
  // compute [1, 0], loads [1, 1]: k=0 -> 2, k=1 -> max(1, 1) = 1, k=2 -> max(1, 0) = 1.
  const r = cakeOracle((i) => [1, 0][i], () => 1, 2, 0);
  assert.equal(r, { split: 1, time: 1 });
});

test('matches brute force on random rising compute and flat loads', () => {
  const rnd = mulberry32(7);
  for (let trial = 0; trial < 500; trial++) {
    const n = Math.floor(rnd() * 40);
    const base = rnd() * 0.05;
    const slope = rnd() * 0.01;
    const compute = Array.from({ length: n }, (_, i) => base + slope * i);
    const l = rnd() * 0.1;
    const load = Array.from({ length: n }, () => l);
    const suffix = rnd() * 0.02;
    const r = cakeOracle((i) => compute[i], (i) => load[i], n, suffix);
    const bf = bruteForce(compute, load, suffix);
    assert.ok(Math.abs(r.time - bf) < 1e-9, `trial ${trial}: ${r.time} vs ${bf}`);
    assert.ok(r.split >= 0 && r.split <= n);
  }
});

test('exact for arbitrary non-negative times too', () => {
  const rnd = mulberry32(11);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(rnd() * 20);
    const compute = Array.from({ length: n }, () => rnd());
    const load = Array.from({ length: n }, () => rnd());
    const r = cakeOracle((i) => compute[i], (i) => load[i], n, 0);
    assert.ok(Math.abs(r.time - bruteForce(compute, load, 0)) < 1e-9);
  }
});

test('each per-chunk time is asked for once (O(n))', () => {
  let calls = 0;
  cakeOracle(
    () => (calls++, 1),
    () => (calls++, 1),
    1000,
    0,
  );
  assert.equal(calls, 2000);
});

test('bad input names the argument', () => {
  assert.throws(() => cakeOracle(() => 1, () => 1, -1, 0), /n must be an integer >= 0/);
  assert.throws(() => cakeOracle(() => 1, () => 1, 2.5, 0), /n must be an integer >= 0/);
  assert.throws(() => cakeOracle(() => 1, () => 1, 2, -1), /suffixTime must be a finite number >= 0/);
  assert.throws(() => cakeOracle(() => NaN, () => 1, 2, 0), /computeChunk\(0\) must be a finite number >= 0/);
  assert.throws(() => cakeOracle(() => 1, (i) => (i === 1 ? -2 : 1), 2, 0), /loadChunk\(1\) must be a finite number >= 0/);
  assert.throws(() => cakeOracle(undefined as never, () => 1, 2, 0), /computeChunk must be a function/);
});

test.run();
