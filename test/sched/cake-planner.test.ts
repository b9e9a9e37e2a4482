// The joint Cake planner: its model by hand and against brute force, then the scheduler core
// driving several prefix requests at once through an event simulation written here (its own
// executor and cost formula, not lib/sim), against compute-only and load-only on the same
// scenarios.
import { test } from 'uvu';
import type { CostModel } from '../../lib/cost/cost-model.js';
import * as assert from 'uvu/assert';
import { evaluatePlan, planCake, type PlanInput, type PlanJob } from '../../lib/sched/cake/planner.js';
import { Scheduler } from '../../lib/sched/scheduler.js';
import type { Executor, StepPlan, StepResult } from '../../lib/contract/plan.js';
import { simulate } from '../../lib/sim/simulate.js';
import type { Request } from '../../lib/contract/request.js';
import { mulberry32 } from '../../lib/workload/rng.js';

// ---- the planner's model ----------------------------------------------------------------

/** A fresh job: nothing started or issued; front cost of chunk i is base + slope * i. */
function freshJob(stored: number, base: number, slope: number, load: number, suffix: number): PlanJob {
  const front = new Float64Array(stored + 1);
  for (let k = 1; k <= stored; k++) front[k] = front[k - 1] + base + slope * (k - 1);
  return { first: 0, last: stored, stored, front, loadTime: load, loadsLandAt: -Infinity, suffix };
}

function bruteForce(input: PlanInput): number {
  const jobs = input.jobs;
  const s = new Int32Array(jobs.length);
  let best = Infinity;
  const rec = (j: number) => {
    if (j === jobs.length) {
      best = Math.min(best, evaluatePlan(input, s));
      return;
    }
    for (let k = jobs[j].first; k <= jobs[j].last; k++) {
      s[j] = k;
      rec(j + 1);
    }
  };
  rec(0);
  return best;
}

test('hand-worked: two requests, FCFS on the GPU and the store', () => {
  // Each: 4 chunks, compute 1 s each, loads 1 s each, no suffix. Alone, split 2 ends at 2 s.
  // Together: r0 split 2 ends at 2; r1's front starts at 2 and its loads after r0's two,
  // so r1 split 2 ends at max(4, 4) = 4: total 6. Computing more of r1 cannot help (the GPU
  // is later than the store); r1 split 1: front 3, loads 2 + 3 = 5: total 7. Best is 6.
  const input: PlanInput = { now: 0, storageFreeAt: 0, jobs: [freshJob(4, 1, 0, 1, 0), freshJob(4, 1, 0, 1, 0)] };
  assert.equal(evaluatePlan(input, [2, 2]), 6);
  assert.equal(evaluatePlan(input, [2, 1]), 7);
  const p = planCake(input);
  assert.equal(p.total, 6);
  assert.equal(p.computeOnly, 4 + 8);
  assert.equal(p.loadOnly, 4 + 8);
  assert.equal([...p.finish], [2, 4]);
});

test('the store\'s backlog and issued loads count; splits stay within [first, last]', () => {
  // The store is busy for 10 s: loading anything is hopeless, so everything is computed up
  // to the loads already issued (r1 has issued chunks 3.., landing at 12).
  const r0 = freshJob(4, 1, 0, 1, 0.5);
  const r1: PlanJob = { ...freshJob(4, 1, 0, 1, 0.5), first: 1, last: 3, front: Float64Array.of(0, 1, 2), loadsLandAt: 12 };
  const p = planCake({ now: 0, storageFreeAt: 10, jobs: [r0, r1] });
  assert.equal([...p.splits], [4, 3]);
  // r0 computes all 4 (4 s) then its suffix; r1's front (2 s) waits behind r0's front and
  // its suffix: 4 + 0.5 + 2 = 6.5, but its loads land at 12: 12 + 0.5.
  assert.equal([...p.finish], [4.5, 12.5]);
});

test('a ready suffix of a request past its split pushes later fronts back', () => {
  const job = freshJob(2, 1, 0, 100, 0);
  // Fixed: a suffix of 0.5 s ready at 1 s, inside the front's [0, 2).
  assert.equal(evaluatePlan({ now: 0, storageFreeAt: 0, jobs: [job], fixed: [{ readyAt: 1, suffix: 0.5 }] }, [2]), 2.5);
  // Ready after the front: no delay.
  assert.equal(evaluatePlan({ now: 0, storageFreeAt: 0, jobs: [job], fixed: [{ readyAt: 3, suffix: 0.5 }] }, [2]), 2);
});

test('never planned above compute-only or load-only, and close to brute force', () => {
  const rng = mulberry32(11);
  let worst = 1;
  let misses = 0;
  for (let trial = 0; trial < 300; trial++) {
    const n = 2 + Math.floor(rng() * 3);
    const jobs: PlanJob[] = [];
    for (let j = 0; j < n; j++) {
      const stored = 1 + Math.floor(rng() * (n === 4 ? 4 : 7));
      const job = freshJob(stored, 0.5 + rng(), rng() * 0.3, 0.2 + rng() * 3, rng() < 0.3 ? 0 : rng() * 0.5);
      if (rng() < 0.5) job.computeAll = job.front[stored] + job.suffix * 0.9;
      jobs.push(job);
    }
    const input: PlanInput = { now: 0, storageFreeAt: rng() < 0.5 ? 0 : rng() * 3, jobs, fixed: rng() < 0.3 ? [{ readyAt: rng() * 2, suffix: rng() * 0.3 }] : [] };
    const p = planCake(input);
    assert.ok(p.total <= Math.min(p.computeOnly, p.loadOnly) + 1e-9, `trial ${trial}: planned ${p.total} above a single mode`);
    assert.ok(Math.abs(evaluatePlan(input, p.splits) - p.total) < 1e-9);
    p.splits.forEach((k, j) => assert.ok(k >= jobs[j].first && k <= jobs[j].last));
    const ratio = p.total / bruteForce(input);
    worst = Math.max(worst, ratio);
    if (ratio > 1 + 1e-9) misses++;
  }
  // Local search, not exhaustive: it may stop in a local minimum (2 of these 300 instances,
  // the worst 3.9% above the optimum when written), but rarely and not far.
  assert.ok(worst <= 1.05, `worst planned / brute-force optimum ${worst}`);
  assert.ok(misses <= 6, `${misses} of 300 instances not at the brute-force optimum`);
});

test('bad input names the field', () => {
  const job = freshJob(3, 1, 0, 1, 0);
  assert.throws(() => planCake({ now: 0, storageFreeAt: 0, jobs: [{ ...job, first: 2, last: 1 }] }), /first <= last/);
  assert.throws(() => planCake({ now: 0, storageFreeAt: 0, jobs: [{ ...job, front: Float64Array.of(0, 1) }] }), /front must have last - first \+ 1 = 4 entries/);
  assert.throws(() => planCake({ now: 0, storageFreeAt: 0, jobs: [{ ...job, loadTime: -1 }] }), /loadTime/);
  assert.throws(() => planCake({ now: NaN, storageFreeAt: 0, jobs: [] }), /now/);
});

// ---- several prefix requests through the scheduler core ----------------------------------

interface World {
  t0: number;
  /** Seconds per new token (linear layers) and per (new token x attended token) (attention). */
  perToken: number;
  perPair: number;
  /** Bytes per token of KV over all layers, and the store's bytes/s. */
  kvBytesPerToken: number;
  storageBw: number;
}

const LAYERS = 4;

function stepTime(w: World, items: readonly { tokens: number; cachedBefore: number }[]): number {
  if (items.length === 0) return 0;
  let t = w.t0;
  for (const it of items) t += it.tokens * w.perToken + it.tokens * (it.cachedBefore + it.tokens / 2) * w.perPair;
  return t;
}

/** What the scheduler core is told (the same formula the executor runs). */
function costFor(w: World): CostModel {
  const ch = { h2d: { bandwidth: H2D, latency: 0 }, d2h: { bandwidth: H2D, latency: 0 }, storage: { bandwidth: w.storageBw, latency: 0 } };
  return {
    numLayers: LAYERS,
    kvBytesPerTokenLayer: w.kvBytesPerToken / LAYERS,
    deviceKvBytes: 1e13,
    stepTime: (items: readonly { tokens: number; cachedBefore: number }[]) => stepTime(w, items),
    prefillChunkTime: (c: number, k: number) => stepTime(w, [{ tokens: c, cachedBefore: k }]),
    channel: (c) => ch[c],
    transferTime: (bytes, c) => bytes / ch[c].bandwidth + ch[c].latency,
  };
}

/** PCIe, fast enough that the second hop of a prefix load is a small fixed lag. */
const H2D = 1e11;

/** A virtual clock, one GPU running a step at a time, one FIFO store channel, and one FIFO
 *  PCIe channel for the second hop of each chunk (after its read). */
class TinyExecutor implements Executor {
  now = 0;
  private storeFree = 0;
  private pcieFree = 0;
  private inFlight: { id: number; at: number }[] = [];
  constructor(private readonly w: World) {}
  get pendingTransfers(): number {
    return this.inFlight.length;
  }
  async execute(plan: StepPlan): Promise<StepResult> {
    const start = this.now;
    for (const t of plan.transfers) {
      if (t.channel === 'storage') {
        this.storeFree = Math.max(this.storeFree, start) + t.bytes / this.w.storageBw;
        this.inFlight.push({ id: t.id, at: this.storeFree });
      } else if (t.channel === 'h2d' && t.kind === 'prefix-load') {
        const ready = Math.max(start, ...(t.after ?? []).map((d) => this.inFlight.find((f) => f.id === d)?.at ?? start));
        this.pcieFree = Math.max(this.pcieFree, ready) + t.bytes / H2D;
        this.inFlight.push({ id: t.id, at: this.pcieFree });
      } else {
        throw new Error(`unexpected ${t.kind} transfer`);
      }
    }
    this.now = start + stepTime(this.w, plan.compute);
    const sampled = plan.compute.filter((c) => c.emitsToken).map((c) => ({ seq: c.seq, token: 0 }));
    return { start, end: this.now, transfersDone: this.land(), sampled };
  }
  async idle(until: number): Promise<StepResult> {
    const start = this.now;
    const next = Math.min(until, ...this.inFlight.map((t) => t.at));
    if (Number.isFinite(next) && next > this.now) this.now = next;
    return { start, end: this.now, transfersDone: this.land(), sampled: [] };
  }
  private land(): { id: number; at: number }[] {
    const done = this.inFlight.filter((t) => t.at <= this.now).sort((a, b) => a.at - b.at || a.id - b.id);
    this.inFlight = this.inFlight.filter((t) => t.at > this.now);
    return done;
  }
}

interface Scenario {
  w: World;
  budget: number;
  requests: Request[];
}

function scenario(rng: () => number): Scenario {
  const chunk = rng() < 0.5 ? 256 : 512;
  const perToken = 2e-5 + rng() * 2e-4;
  const perPair = (perToken * (0.5 + rng() * 4)) / 16384;
  const kvBytesPerToken = 1e5;
  // Average front cost of one chunk over a 16K prompt, against which a chunk's load time is
  // drawn from 0.1x (loading wins) to 8x (computing wins).
  const avgChunk = chunk * perToken + chunk * 8192 * perPair;
  const loadTime = avgChunk * Math.exp(Math.log(0.1) + rng() * Math.log(80));
  const w: World = { t0: 0.002, perToken, perPair, kvBytesPerToken, storageBw: (chunk * kvBytesPerToken) / loadTime };
  const n = 2 + Math.floor(rng() * 5);
  const gap = rng() * 16 * avgChunk;
  const requests: Request[] = [];
  let arrival = 0;
  for (let i = 0; i < n; i++) {
    const stored = 4 + Math.floor(rng() * 29);
    const suffix = rng() < 0.2 ? 0 : Math.floor(rng() * 600) + 1;
    requests.push({
      id: `p${i}`,
      arrival,
      promptLen: stored * chunk + suffix,
      maxNewTokens: 1,
      prefix: { chunkTokens: chunk, storedChunks: stored, chunkHashes: Array.from({ length: stored }, (_, c) => `p${i}-${c}`) },
    });
    arrival += gap * rng() * 2;
  }
  return { w, budget: 1024 * (1 + Math.floor(rng() * 4)), requests };
}

async function meanTtft(sc: Scenario, mode: 'cake' | 'compute-only' | 'load-only'): Promise<number> {
  const scheduler = new Scheduler({
    cost: costFor(sc.w),
    prefix: mode,
    storageBandwidth: sc.w.storageBw,
    maxBatchedTokens: sc.budget,
    recordTables: false,
    check: true,
    deviceBlocks: 40000,
    hostBlocks: 40000,
  });
  const r = await simulate({ requests: sc.requests, scheduler, executor: new TinyExecutor(sc.w) });
  assert.equal(r.metrics.completed, sc.requests.length, `${mode}: not every request completed`);
  return r.metrics.ttft.mean;
}

// The planner is exact in its own model; the run differs from it by step granularity only:
// arrivals and landed loads are seen at step boundaries, a front's range is estimated as one
// step (the real one pays the fixed per-step cost once per budget-sized step), and a step's
// budget is shared between two fronts where one ends. Each costs at most about one step per
// request, which on these scenarios (16-128 steps of prefix per request) is a few percent
// of a TTFT; 3% is that bound, and the scenarios sit far below it almost always.
const TOLERANCE = 0.03;

test('several prefix requests: Cake never loses to the better single mode (random scenarios)', async () => {
  const rng = mulberry32(2024);
  let worst = 0;
  let sumVsBetter = 0;
  const N = 60;
  for (let i = 0; i < N; i++) {
    const sc = scenario(rng);
    const cake = await meanTtft(sc, 'cake');
    const better = Math.min(await meanTtft(sc, 'compute-only'), await meanTtft(sc, 'load-only'));
    const ratio = cake / better;
    worst = Math.max(worst, ratio);
    sumVsBetter += ratio;
    assert.ok(ratio <= 1 + TOLERANCE, `scenario ${i} (${sc.requests.length} requests, budget ${sc.budget}): Cake ${cake} vs better single mode ${better} (${ratio.toFixed(3)})`);
  }
  // On average the joint plan should be clearly better than either single mode, not just tie.
  assert.ok(sumVsBetter / N < 0.97, `mean Cake / better single mode ${sumVsBetter / N}`);
});

test.run();
