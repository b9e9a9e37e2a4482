// CakeTracker: the state machine by hand-worked scenarios, its invariants, and its TTFT in a
// one-request event simulation against the oracle and against compute-only / load-only.
// The simulation here is independent of the scheduler core: each step the request gets a
// token budget; loads run one after another on one storage channel, are issued at step
// boundaries, and are reported at the end of the step (or idle wait) in which they land.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CakeTracker, type CakeEstimates, type PrefixMode } from '../../lib/sched/cake/tracker.js';
import { cakeOracle } from '../../lib/sched/cake/oracle.js';
import { mulberry32 } from '../../lib/workload/rng.js';

// ---- one-request simulation -------------------------------------------------------------

interface OneRequest {
  promptLen: number;
  chunkTokens: number;
  storedChunks: number;
  budget: number;
  /** Seconds for one step prefilling [start, start + tokens). */
  stepTime(start: number, tokens: number): number;
  loadTime(chunk: number): number;
  maxLoadsInFlight?: number;
  /** Ask for loads before compute in each step (the scheduler core does; either must work). */
  loadsFirst?: boolean;
  /** Land the loads of one step in a shuffled order. */
  shuffle?: () => number;
}

interface Outcome {
  ttft: number;
  tracker: CakeTracker;
  computes: { start: number; tokens: number }[];
  loads: number[];
}

/** Seconds the front takes over [start, start + tokens) in steps of at most `budget` tokens. */
function prefillTime(r: OneRequest, start: number, tokens: number): number {
  let t = 0;
  for (let s = start; s < start + tokens; s += r.budget) t += r.stepTime(s, Math.min(r.budget, start + tokens - s));
  return t;
}

function estimatesFor(r: OneRequest): CakeEstimates {
  return { compute: (start, tokens) => prefillTime(r, start, tokens), load: (c) => r.loadTime(c) };
}

/** `computeSkew`: the estimates' compute times are the true ones divided by this (2: the
 *  caller's cost model sees half the real step time, as when other work shares the step). */
function simulate(r: OneRequest, mode: PrefixMode, withEstimates: boolean, computeSkew = 1): Outcome {
  const exact = estimatesFor(r);
  const tracker = new CakeTracker({
    promptLen: r.promptLen,
    chunkTokens: r.chunkTokens,
    storedChunks: r.storedChunks,
    mode,
    maxLoadsInFlight: r.maxLoadsInFlight,
    estimates: withEstimates ? { compute: (s, n) => exact.compute(s, n) / computeSkew, load: exact.load } : undefined,
  });
  const computes: { start: number; tokens: number }[] = [];
  const loads: number[] = [];
  const pending: { chunk: number; at: number }[] = [];
  let channelFree = 0;
  let t = 0;
  const issueLoads = () => {
    for (let c = tracker.nextLoad(t, r.budget); c >= 0; c = tracker.nextLoad(t, r.budget)) {
      channelFree = Math.max(channelFree, t) + r.loadTime(c);
      pending.push({ chunk: c, at: channelFree });
      loads.push(c);
    }
  };
  const deliver = (until: number) => {
    const landed = pending.filter((p) => p.at <= until);
    if (r.shuffle) {
      const keys = new Map(landed.map((p) => [p, r.shuffle!()]));
      landed.sort((a, b) => keys.get(a)! - keys.get(b)!);
    }
    for (const p of landed) {
      pending.splice(pending.indexOf(p), 1);
      tracker.onLoaded(p.chunk, p.at);
    }
  };
  for (let guard = 0; !tracker.done; guard++) {
    if (guard > 1e6) throw new Error('simulation did not finish');
    if (r.loadsFirst) issueLoads();
    const c = tracker.nextCompute(r.budget, t);
    if (!r.loadsFirst) issueLoads();
    if (c) {
      const end = t + r.stepTime(c.start, c.tokens);
      computes.push(c);
      deliver(end);
      tracker.onComputed(c.start, c.tokens);
      t = end;
    } else {
      if (pending.length === 0) throw new Error(`stuck: no compute and no load in flight (phase ${tracker.phase})`);
      t = Math.min(...pending.map((p) => p.at));
      deliver(t);
    }
  }
  return { ttft: t, tracker, computes, loads };
}

/** The oracle for a simulated request: per-chunk times as the front pays them (in budget-sized
 *  steps from token 0), flat loads, then the suffix (or the recomputed last token). */
function oracleFor(r: OneRequest) {
  const C = r.chunkTokens;
  const S = r.storedChunks;
  const front = (i: number) => prefillTime(r, 0, (i + 1) * C) - prefillTime(r, 0, i * C);
  const suffix = r.promptLen > S * C ? prefillTime(r, S * C, r.promptLen - S * C) : r.stepTime(r.promptLen - 1, 1);
  return cakeOracle(front, r.loadTime, S, suffix);
}

/** Every prompt token is computed or loaded exactly once, except the recomputed last token;
 *  no load is wasted; compute runs in order. */
function checkInvariants(r: OneRequest, mode: PrefixMode, o: Outcome) {
  const { tracker, computes, loads } = o;
  const C = r.chunkTokens;
  const P = r.promptLen;
  const cover = new Uint8Array(P);
  assert.equal(new Set(loads).size, loads.length, 'a chunk was loaded twice');
  for (const c of loads) {
    assert.ok(c >= 0 && c < r.storedChunks, `load of chunk ${c} outside the stored prefix`);
    for (let i = c * C; i < (c + 1) * C; i++) cover[i]++;
  }
  let lastEnd = 0;
  for (const [n, c] of computes.entries()) {
    const recompute = c.start === P - 1 && c.tokens === 1 && cover[P - 1] === 1 && n === computes.length - 1 && tracker.recomputedLastToken;
    if (!recompute) {
      assert.ok(c.start >= lastEnd, `compute ${c.start}+${c.tokens} goes back before ${lastEnd}`);
      for (let i = c.start; i < c.start + c.tokens; i++) cover[i]++;
      lastEnd = c.start + c.tokens;
    }
    assert.ok(c.tokens >= 1 && c.tokens <= r.budget, `compute of ${c.tokens} tokens with budget ${r.budget}`);
  }
  for (let i = 0; i < P; i++) assert.equal(cover[i], 1, `token ${i} covered ${cover[i]} times (${mode})`);
  assert.equal(tracker.wastedLoadTokens, 0);
  assert.equal(tracker.loadedTokens, loads.length * C);
  assert.equal(tracker.loadedTokens + tracker.computedTokens, P + (tracker.recomputedLastToken ? 1 : 0));
  assert.equal(tracker.recomputedLastToken, P === r.storedChunks * C && loads.length > 0);
  if (mode === 'compute-only') assert.equal(loads.length, 0);
  if (mode === 'load-only') assert.equal(loads.length, r.storedChunks);
  assert.ok(tracker.done);
  assert.equal(tracker.phase, 'done');
  assert.equal(tracker.computedEnd, P);
}

// ---- hand-worked scenarios --------------------------------------------------------------

/** Every load the tracker issues at `now` (with `stepTokens` for the step's front, if given). */
function drainLoads(t: CakeTracker, now: number, stepTokens?: number): number[] {
  const loads: number[] = [];
  for (let c = t.nextLoad(now, stepTokens); c >= 0; c = t.nextLoad(now, stepTokens)) loads.push(c);
  return loads;
}

/** An 800-token prompt, fully stored in eight 100-token chunks, under Cake. */
const EIGHT_CHUNKS = { promptLen: 800, chunkTokens: 100, storedChunks: 8, mode: 'cake' as const };

/** Steps a tracker by hand: loads first, then compute, everything lands at the step's end. */
function step(t: CakeTracker, budget: number) {
  const loads: number[] = [];
  for (let c = t.nextLoad(); c >= 0; c = t.nextLoad()) loads.push(c);
  const c = t.nextCompute(budget);
  return { loads, c };
}

test('no stored chunks: a plain chunked prefill', () => {
  const t = new CakeTracker({ promptLen: 700, chunkTokens: 256, storedChunks: 0, mode: 'cake' });
  assert.equal(t.nextLoad(), -1);
  assert.equal(t.phase, 'suffix');
  const ranges = [];
  for (let r = t.nextCompute(300); r; r = t.nextCompute(300)) {
    ranges.push(r);
    t.onComputed(r.start, r.tokens);
  }
  assert.equal(ranges, [{ start: 0, tokens: 300 }, { start: 300, tokens: 300 }, { start: 600, tokens: 100 }]);
  assert.ok(t.done);
  assert.equal([t.loadedTokens, t.computedTokens, t.recomputedLastToken], [0, 700, false]);
});

test('greedy Cake, fully stored prompt: front and back meet, then the last token is recomputed', () => {
  // 10 chunks of 100 tokens, 2 loads in flight, one chunk of compute per step; every load
  // lands by the end of the step it was issued in.
  const t = new CakeTracker({ promptLen: 1000, chunkTokens: 100, storedChunks: 10, mode: 'cake' });
  const trace: string[] = [];
  for (let i = 0; i < 20 && !t.done; i++) {
    const { loads, c } = step(t, 100);
    trace.push(`${loads.join(',') || '-'} ${c ? `${c.start}+${c.tokens}` : '-'}`);
    for (const l of loads) t.onLoaded(l);
    if (c) t.onComputed(c.start, c.tokens);
  }
  // Step 4: loads are asked for first, so chunk 3 goes to the store and the two have met at
  // token 300; the front waits for chunk 3, then the last token is recomputed for logits.
  assert.equal(trace, ['9,8 0+100', '7,6 100+100', '5,4 200+100', '3 -', '- 999+1']);
  assert.ok(t.done);
  assert.equal([t.loadedTokens, t.computedTokens, t.recomputedLastToken, t.wastedLoadTokens], [700, 301, true, 0]);
});

test('prompt not a multiple of the chunk: the uncached suffix is computed after the loads, no recompute', () => {
  const t = new CakeTracker({ promptLen: 1050, chunkTokens: 100, storedChunks: 10, mode: 'load-only', maxLoadsInFlight: 10 });
  const { loads, c } = step(t, 500);
  assert.equal(loads, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  assert.is(c, null, 'load-only computes nothing before its loads land');
  assert.equal(t.phase, 'draining');
  for (const l of loads) t.onLoaded(l);
  assert.equal(t.phase, 'suffix');
  assert.equal(t.computedEnd, 1000);
  assert.equal(t.nextCompute(500), { start: 1000, tokens: 50 });
  t.onComputed(1000, 50);
  assert.ok(t.done);
  assert.equal([t.loadedTokens, t.computedTokens, t.recomputedLastToken], [1000, 50, false]);
});

test('budget smaller than a chunk: the front moves in partial chunks and no load lands on a started chunk', () => {
  const t = new CakeTracker({ promptLen: 500, chunkTokens: 100, storedChunks: 5, mode: 'cake', maxLoadsInFlight: 1 });
  // Step 1: load chunk 4, compute [0, 30).
  let s = step(t, 30);
  assert.equal(s, { loads: [4], c: { start: 0, tokens: 30 } });
  t.onComputed(0, 30); // chunk 4 still in flight
  // Step 2: the one load slot is busy; compute [30, 60).
  s = step(t, 30);
  assert.equal(s, { loads: [], c: { start: 30, tokens: 30 } });
  t.onComputed(30, 30);
  t.onLoaded(4);
  // Steps 3-5: chunk 3, then 2 are loaded while the front works through chunk 0 and into 1.
  s = step(t, 30);
  assert.equal(s, { loads: [3], c: { start: 60, tokens: 30 } });
  t.onLoaded(3);
  t.onComputed(60, 30);
  s = step(t, 30);
  assert.equal(s, { loads: [2], c: { start: 90, tokens: 30 } });
  t.onComputed(90, 30); // front at 120, inside chunk 1
  // Chunk 1 has been started by the front: never loaded. The front finishes it, stopping at
  // chunk 2 (in flight): chunk-aligned at the loads.
  s = step(t, 100);
  assert.equal(s, { loads: [], c: { start: 120, tokens: 80 } });
  t.onComputed(120, 80);
  assert.equal(t.phase, 'draining', 'met, waiting for chunk 2');
  assert.is(t.nextCompute(100), null, 'the front does not compute an in-flight chunk');
  t.onLoaded(2);
  assert.equal(t.nextCompute(100), { start: 499, tokens: 1 });
  t.onComputed(499, 1);
  assert.ok(t.done);
  assert.equal([t.loadedTokens, t.computedTokens], [300, 201]);
});

test('loads landing out of order: the suffix waits for all of them', () => {
  const t = new CakeTracker({ promptLen: 420, chunkTokens: 100, storedChunks: 4, mode: 'load-only', maxLoadsInFlight: 4 });
  const { loads } = step(t, 100);
  assert.equal(loads, [3, 2, 1, 0]);
  for (const l of [1, 3, 0]) {
    t.onLoaded(l);
    assert.is(t.nextCompute(100), null, `chunk 2 still in flight after ${l} landed`);
    assert.equal(t.computedEnd, 0);
  }
  t.onLoaded(2);
  assert.equal(t.nextCompute(100), { start: 400, tokens: 20 });
  t.onComputed(400, 20);
  assert.ok(t.done);
});

test('compute-only: never loads, computes every token, nothing recomputed', () => {
  const t = new CakeTracker({ promptLen: 512, chunkTokens: 128, storedChunks: 4, mode: 'compute-only' });
  assert.equal(t.nextLoad(), -1);
  for (let r = t.nextCompute(200); r; r = t.nextCompute(200)) t.onComputed(r.start, r.tokens);
  assert.ok(t.done);
  assert.equal([t.loadedTokens, t.computedTokens, t.recomputedLastToken], [0, 512, false]);
});

test('asking for loads after compute in the same step never loads the planned range', () => {
  const t = new CakeTracker({ promptLen: 400, chunkTokens: 100, storedChunks: 4, mode: 'cake', maxLoadsInFlight: 4 });
  assert.equal(t.nextCompute(250), { start: 0, tokens: 250 });
  const loads: number[] = [];
  for (let c = t.nextLoad(); c >= 0; c = t.nextLoad()) loads.push(c);
  assert.equal(loads, [3], 'chunks 0-2 are being computed this step');
  t.onComputed(0, 250);
  assert.equal(t.nextCompute(250), { start: 250, tokens: 50 });
});

test('with estimates: slow storage computes everything, free storage loads everything', () => {
  const slow = new CakeTracker({
    promptLen: 800, chunkTokens: 100, storedChunks: 8, mode: 'cake',
    estimates: { compute: (_s, n) => n * 1e-4, load: () => 10 },
  });
  assert.equal(slow.nextLoad(0), -1);
  assert.equal(slow.nextCompute(800, 0), { start: 0, tokens: 800 });
  slow.onComputed(0, 800);
  assert.ok(slow.done);
  assert.equal(slow.loadedTokens, 0);

  const free = new CakeTracker({
    promptLen: 800, chunkTokens: 100, storedChunks: 8, mode: 'cake',
    estimates: { compute: (_s, n) => n * 1e-2, load: () => 1e-6 },
  });
  const loads: number[] = [];
  for (let c = free.nextLoad(0); c >= 0; c = free.nextLoad(0)) loads.push(c);
  assert.equal(loads, [7, 6, 5, 4, 3, 2, 1, 0], 'unbounded in flight by default with estimates');
  assert.is(free.nextCompute(800, 0), null);
  for (const l of loads) free.onLoaded(l, 1e-6);
  assert.equal(free.nextCompute(800, 0), { start: 799, tokens: 1 });
});

test('with estimates: a store busy with other requests\' loads shifts the split toward compute', () => {
  // Loads alone would win (1 ms each against 10 ms of compute per chunk), but the store's
  // queue is busy for the next 50 ms: loading now means waiting behind it.
  const compute = (_s: number, n: number) => n * 1e-4;
  const idle = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute, load: () => 1e-3 } });
  const busy = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute, load: () => 1e-3, storageFreeAt: () => 0.05 } });
  const drain = (t: CakeTracker) => drainLoads(t, 0);
  assert.equal(drain(idle).length, 8);
  // Busy: k=0 costs 50 + 8 ms; computing 5 chunks (50 ms) against 3 loads (53 ms) is best.
  assert.equal(drain(busy), [7, 6, 5]);
  assert.equal(busy.nextCompute(800, 0), { start: 0, tokens: 500 });
});

test('with estimates: a front queued behind other prefills shifts the split toward loading', () => {
  // Balanced alone (10 ms per chunk either way: half computed, half loaded); with the GPU's
  // leftover budget expected only from 100 ms on, loading all 8 chunks (80 ms) wins.
  const compute = (_s: number, n: number) => n * 1e-4;
  const alone = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute, load: () => 0.01 } });
  const queued = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute, load: () => 0.01, computeFreeAt: () => 0.1 } });
  const drain = (t: CakeTracker) => drainLoads(t, 0);
  assert.equal(drain(alone), [7, 6, 5, 4]);
  assert.equal(drain(queued), [7, 6, 5, 4, 3, 2, 1, 0]);
  assert.is(queued.nextCompute(800, 0), null);
});

test('with estimates: a first step that pays a wake cost is not read as a slow front', () => {
  // Balanced (10 ms per chunk either way): chunks 4..7 are loaded. The first step runs after
  // idle and takes 8 ms more than its compute. Told of that overhead, the tracker keeps its
  // split; not told, it reads a front 40% slower than estimated and commits one more load,
  // which the front would have beaten.
  const compute = (_s: number, n: number) => n * 1e-4;
  const run = (stepOverhead?: (now: number) => number) => {
    const t = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute, load: () => 0.01, stepOverhead } });
    const drain = (now: number) => drainLoads(t, now);
    const first = drain(0);
    assert.equal(t.nextCompute(100, 0), { start: 0, tokens: 100 });
    t.onLoaded(7, 0.01);
    t.onComputed(0, 100);
    return { first, second: drain(0.018) };
  };
  assert.equal(run((now) => (now === 0 ? 0.008 : 0)), { first: [7, 6, 5, 4], second: [] });
  assert.equal(run(), { first: [7, 6, 5, 4], second: [3] });
});

test('with estimates: a load that overtakes an earlier one does not make the rest look early', () => {
  // Balanced (10 ms per chunk either way): chunks 4..7 are loaded, expected at 10, 20, 30
  // and 40 ms. Chunk 6 lands first, at 10 ms: the channel is on time, and the three still
  // in flight land at 20, 30 and 40. Read as chunk 6 ten ms early, they would all look ten
  // ms early, and the split would take one more load (chunk 3) than the front needs.
  const t = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute: (_s, n) => n * 1e-4, load: () => 0.01 } });
  const drain = (now: number) => drainLoads(t, now);
  assert.equal(drain(0), [7, 6, 5, 4]);
  assert.equal(t.nextCompute(100, 0), { start: 0, tokens: 100 });
  t.onLoaded(6, 0.01);
  t.onComputed(0, 100);
  assert.equal(drain(0.01), []);
  assert.equal(t.nextCompute(100, 0.01), { start: 100, tokens: 100 });
});

test('with estimates: one stalled step does not set the front\'s pace', () => {
  // 10 ms of compute and 11 ms of load per chunk: chunks 4..7 are loaded (landing at 11, 22,
  // 33 and 44 ms). The front's second step stalls, 20 ms for 10. At 30 ms the front, at its
  // usual pace, reaches chunk 4 at 50 ms, before a load of chunk 3 could land (55 ms). Read
  // as a front 1.33x slower (the ratio of the sums), it would reach chunk 4 at 57 ms, and
  // chunk 3 would be loaded.
  const t = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute: (_s, n) => n * 1e-4, load: () => 0.011 } });
  const drain = (now: number) => drainLoads(t, now);
  assert.equal(drain(0), [7, 6, 5, 4]);
  assert.equal(t.nextCompute(100, 0), { start: 0, tokens: 100 });
  t.onComputed(0, 100);
  assert.equal(drain(0.01), []);
  assert.equal(t.nextCompute(100, 0.01), { start: 100, tokens: 100 });
  t.onLoaded(7, 0.011);
  t.onLoaded(6, 0.022);
  t.onComputed(100, 100);
  assert.equal(drain(0.03), []);
  assert.equal(t.nextCompute(100, 0.03), { start: 200, tokens: 100 });
});

test('with estimates: the split\'s last load waits while the channel is busy, and a front faster than estimated computes it instead', () => {
  // Estimated 10 ms of compute and 9 ms of load per chunk: chunks 4..7 are to be loaded.
  // Chunks 5..7 keep the channel busy for 27 ms, more than a step (one chunk) needs, so
  // chunk 4's load waits. The front runs at 7 ms a chunk; after two steps the split moves
  // to 5: the front reaches chunk 5 at 35 ms, where loading chunk 4 too would land at 36.
  const t = new CakeTracker({ ...EIGHT_CHUNKS, estimates: { compute: (_s, n) => n * 1e-4, load: () => 0.009 } });
  const drain = (now: number) => drainLoads(t, now, 100);
  const landings: Record<number, number> = { 7: 0.009, 6: 0.018, 5: 0.027 };
  const loads = drain(0);
  assert.equal(loads, [7, 6, 5]);
  let now = 0;
  for (let step = 0; step < 5; step++) {
    const c = t.nextCompute(100, now);
    assert.equal(c, { start: 100 * step, tokens: 100 }, `step ${step}`);
    const end = now + 0.007;
    for (const [chunk, at] of Object.entries(landings)) {
      if (at > now && at <= end) t.onLoaded(Number(chunk), at);
    }
    t.onComputed(c!.start, c!.tokens);
    now = end;
    loads.push(...drain(now));
  }
  assert.equal(loads, [7, 6, 5]);
  assert.is(t.phase, 'suffix');
  assert.is(t.computedEnd, 800);
});

test('with estimates: one step asks for O(log n) compute estimates, however many loads it issues', () => {
  // A 128K prompt in 64-token chunks: 2048 chunks. Re-solving the split with a linear scan
  // for every load issued would ask for millions of estimates in the first step.
  let calls = 0;
  const t = new CakeTracker({
    promptLen: 131072, chunkTokens: 64, storedChunks: 2048, mode: 'cake',
    estimates: { compute: (s, n) => (calls++, 1e-5 * n + 1e-10 * n * (s + n / 2)), load: () => 5e-4 },
  });
  calls = 0;
  let loads = 0;
  for (let c = t.nextLoad(0); c >= 0; c = t.nextLoad(0)) loads++;
  const r = t.nextCompute(4096, 0);
  assert.ok(loads > 100 && r !== null, `${loads} loads, compute ${JSON.stringify(r)}`);
  assert.ok(calls <= 64, `${calls} compute estimates for one step`);
});

test('bad options and out-of-protocol calls give clear errors', () => {
  const ok = { promptLen: 1000, chunkTokens: 100, storedChunks: 5, mode: 'cake' as const };
  assert.throws(() => new CakeTracker({ ...ok, promptLen: 0 }), /promptLen must be an integer >= 1, got 0/);
  assert.throws(() => new CakeTracker({ ...ok, chunkTokens: 1.5 }), /chunkTokens must be an integer >= 1/);
  assert.throws(() => new CakeTracker({ ...ok, storedChunks: 11 }), /storedChunks .* must be an integer in \[0, 10\], got 11/);
  assert.throws(() => new CakeTracker({ ...ok, storedChunks: -1 }), /storedChunks/);
  assert.throws(() => new CakeTracker({ ...ok, mode: 'both' as never }), /mode must be one of compute-only, load-only, cake/);
  assert.throws(() => new CakeTracker({ ...ok, maxLoadsInFlight: 0 }), /maxLoadsInFlight must be an integer >= 1/);
  assert.throws(() => new CakeTracker({ ...ok, estimates: { compute: () => 1 } as never }), /estimates must have compute/);
  assert.throws(() => new CakeTracker({ ...ok, estimates: { compute: () => -1, load: () => 1 } }), /estimates.compute must return a finite number >= 0/);
  assert.throws(() => new CakeTracker(undefined as never), /options object required/);

  const t = new CakeTracker(ok);
  assert.throws(() => t.nextCompute(-1), /budget must be an integer >= 0/);
  assert.throws(() => t.onLoaded(4), /onLoaded\(4\): chunk is not in flight/);
  assert.throws(() => t.onComputed(100, 10), /expected start 0/);
  assert.throws(() => t.onComputed(0, 0), /tokens must be an integer >= 1/);
  assert.equal(t.nextLoad(), 4);
  assert.throws(() => t.onComputed(0, 600), /runs past token 400/);
  assert.is(t.nextCompute(0), null);
});

// ---- simulated TTFT ---------------------------------------------------------------------

/** A random request: a roofline-like step time (fixed cost, per token, attention rising with
 *  position) and flat loads from a fifth of the first chunk's compute to thrice the last's. */
function randomRequest(rnd: () => number): OneRequest {
  const C = [16, 32, 64, 128][Math.floor(rnd() * 4)];
  const S = Math.floor(rnd() * 41);
  const tail = rnd() < 0.3 ? 0 : 1 + Math.floor(rnd() * 2 * C);
  const t0 = rnd() * 2e-3;
  const perToken = 1e-5 * (0.5 + rnd());
  const perPair = 1e-8 * (0.2 + 3 * rnd());
  const stepTime = (s: number, n: number) => t0 + perToken * n + perPair * n * (s + n / 2);
  const first = stepTime(0, C);
  const last = stepTime(Math.max(0, S - 1) * C, C);
  const l = first * 0.2 + rnd() * (3 * last - first * 0.2);
  const budget = Math.max(1, Math.round(C * (0.25 + 4 * rnd())));
  return {
    promptLen: S * C + tail || C,
    chunkTokens: C,
    storedChunks: S * C + tail === 0 ? 0 : S,
    budget,
    stepTime,
    loadTime: () => l,
    maxLoadsInFlight: rnd() < 0.5 ? undefined : 1 + Math.floor(rnd() * 6),
    loadsFirst: rnd() < 0.5,
    shuffle: rnd() < 0.5 ? rnd : undefined,
  };
}

test('invariants hold in every mode over random scenarios (greedy and planned)', () => {
  const rnd = mulberry32(2024);
  for (let trial = 0; trial < 300; trial++) {
    const r = randomRequest(rnd);
    for (const mode of ['cake', 'compute-only', 'load-only'] as const) {
      for (const est of [false, true]) {
        try {
          checkInvariants(r, mode, simulate(r, mode, est));
        } catch (e) {
          throw new Error(`trial ${trial} ${mode} estimates=${est} P=${r.promptLen} C=${r.chunkTokens} S=${r.storedChunks} budget=${r.budget}: ${(e as Error).message}`);
        }
      }
    }
  }
});

test('planned Cake: TTFT within 5% of the oracle and never worse than compute-only or load-only', () => {
  const rnd = mulberry32(99);
  let worst = 0;
  for (let trial = 0; trial < 300; trial++) {
    const r = { ...randomRequest(rnd), maxLoadsInFlight: undefined };
    const cake = simulate(r, 'cake', true).ttft;
    const computeOnly = simulate(r, 'compute-only', true).ttft;
    const loadOnly = simulate(r, 'load-only', true).ttft;
    const oracle = oracleFor(r).time;
    worst = Math.max(worst, cake / oracle);
    const what = `trial ${trial} P=${r.promptLen} C=${r.chunkTokens} S=${r.storedChunks} budget=${r.budget}`;
    assert.ok(cake <= oracle * 1.05, `${what}: Cake ${cake.toFixed(4)} s vs oracle ${oracle.toFixed(4)} s`);
    const better = Math.min(computeOnly, loadOnly);
    assert.ok(cake <= better * (1 + 1e-9), `${what}: Cake ${cake.toFixed(4)} s vs best single mode ${better.toFixed(4)} s`);
  }
  assert.ok(worst > 0);
});

test('planned Cake with compute estimates off by 2x: it measures the front and re-plans', () => {
  // The scheduler's estimate is the range alone; in a shared step the front runs slower.
  // After one step the tracker has measured that and moves the split toward the loads.
  const rnd = mulberry32(99);
  const n = 300;
  let sum = 0;
  let within = 0;
  for (let trial = 0; trial < n; trial++) {
    const r = { ...randomRequest(rnd), maxLoadsInFlight: undefined };
    const o = simulate(r, 'cake', true, 2);
    checkInvariants(r, 'cake', o);
    const ratio = o.ttft / oracleFor(r).time;
    sum += ratio;
    if (ratio <= 1.05) within++;
    assert.ok(ratio <= 1.5, `trial ${trial}: ${ratio.toFixed(3)}x the oracle`);
  }
  assert.ok(sum / n <= 1.01, `mean ratio to the oracle ${(sum / n).toFixed(4)}`);
  assert.ok(within >= 0.9 * n, `${within} of ${n} within 5% of the oracle`);
});

test.run();
