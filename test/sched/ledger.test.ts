// Every policy and both preemption modes, on randomized workloads with aborts, run on the
// ledger executor: a real executor that obeys what the ledger accepts cannot compute on
// missing KV, and every block comes back. Tiers are small enough that offloads, reloads,
// promotions, streaming, swaps, recomputes, prefix loads and saves all happen; some runs fail
// a share of the prefix reads, whose chunks must then be computed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, POLICIES, type PolicyName } from '../../lib/sched/index.js';
import { deployment } from '../../lib/cost/presets.js';
import { synthetic } from '../../lib/workload/synthetic.js';
import { annotatePrefixHits } from '../../lib/workload/prefix.js';
import { ListArrivals, runSteps } from '../../lib/loop/step-loop.js';
import { mulberry32 } from '../../lib/workload/rng.js';
import type { Executor, StepPlan, StepResult } from '../../lib/contract/plan.js';
import type { Scheduler } from '../../lib/sched/scheduler.js';
import { LedgerError, LedgerExecutor } from './ledger.js';
import { fakeCost } from './fake-cost.js';

const dep = deployment('Llama-2-7B', 'A100-80G');


interface Run {
  policy: PolicyName;
  seed: number;
  preemption: 'recompute' | 'swap';
  deviceBlocks: number;
  abortRate: number;
  /** Share of prefix reads that fail. */
  failRate?: number;
  /** Output lengths (default [8, 300]); short outputs end requests while their saves are
   *  owed or in flight, and promotions land under saves. */
  outputLen?: [number, number];
}

/** Aborts requests at random: between steps, and while a step is in flight (as an engine's
 *  AbortSignal would). */
class AbortingExecutor implements Executor {
  constructor(
    private readonly inner: LedgerExecutor,
    private readonly scheduler: Scheduler,
    private readonly rng: () => number,
    private readonly rate: number,
    private readonly ids: string[],
  ) {}
  get now() {
    return this.inner.now;
  }
  get pendingTransfers() {
    return this.inner.pendingTransfers;
  }
  aborted = 0;
  private maybeAbort(): void {
    if (this.rng() >= this.rate) return;
    const id = this.ids[Math.floor(this.rng() * this.ids.length)];
    if (this.scheduler.abort(id, 'test abort')) this.aborted++;
  }
  async execute(plan: StepPlan): Promise<StepResult> {
    const r = await this.inner.execute(plan);
    this.maybeAbort();
    return r;
  }
  async idle(until: number): Promise<StepResult> {
    this.maybeAbort();
    return this.inner.idle(until);
  }
}

async function ledgerRun(r: Run) {
  const reqs = annotatePrefixHits(
    synthetic({ n: 30, rate: 10, promptLen: [520, 1000], outputLen: r.outputLen ?? [8, 300], ttftSlo: 2, tpotSlo: 0.1, prefix: { groups: 3, sharedTokens: 512, chunkTokens: 256 }, seed: r.seed }),
    { capacityChunks: 48 },
  );
  const scheduler = createScheduler({ policy: r.policy, cost: dep.cost, deviceBlocks: r.deviceBlocks, hostBlocks: 8000, maxBatchedTokens: 512, preemption: r.preemption, savePrefixes: true, check: true });
  const failRng = mulberry32(r.seed * 104729 + 7);
  const ledger = new LedgerExecutor(dep.cost, { deviceBlocks: r.deviceBlocks, hostBlocks: 8000, blockSize: 16, failRead: () => failRng() < (r.failRate ?? 0) });
  const rng = mulberry32(r.seed * 7919 + 1);
  const executor = new AbortingExecutor(ledger, scheduler, rng, r.abortRate, reqs.map((q) => q.id));
  const events: string[] = [];
  await runSteps({ scheduler, executor, arrivals: new ListArrivals(reqs), onStep: (_p, _r, ev) => events.push(...ev.map((e) => `${e.seq}:${e.kind}`)) });
  ledger.assertEmpty();
  return { scheduler, ledger, executor, events, reqs };
}

const configs: Run[] = [];
POLICIES.forEach((policy, i) => {
  for (const preemption of ['recompute', 'swap'] as const) {
    const seed = 2 * i + (preemption === 'swap' ? 2 : 1);
    configs.push({ policy, seed, preemption, deviceBlocks: seed % 2 ? 3000 : 4400, abortRate: 0.04 });
  }
});
for (const [i, policy] of (['cake', 'layerkv+cake', 'load-only'] as const).entries()) {
  configs.push({ policy, seed: 40 + i, preemption: i === 1 ? 'swap' : 'recompute', deviceBlocks: 3000, abortRate: 0.02, failRate: 0.3 });
}
for (const [i, policy] of (['layerkv', 'layerkv+cake', 'baseline'] as const).entries()) {
  configs.push({ policy, seed: 50 + i, preemption: i === 2 ? 'swap' : 'recompute', deviceBlocks: 3000, abortRate: 0.05, outputLen: [1, 30] });
}
let deferredReleases = 0;
const total = { offloads: 0, reloads: 0, promotions: 0, streamedLoads: 0, swapOuts: 0, preemptions: 0, prefixLoads: 0, prefixLoadFailures: 0, prefixSaves: 0, aborted: 0 };

for (const c of configs) {
  test(`ledger: ${c.policy}, preemption ${c.preemption}, seed ${c.seed}, ${c.deviceBlocks} device blocks${c.failRate ? `, ${c.failRate * 100}% of prefix reads fail` : ''}${c.outputLen ? `, outputs of ${c.outputLen[0]}-${c.outputLen[1]} tokens` : ''}`, async () => {
    const { scheduler, ledger, executor, events, reqs } = await ledgerRun(c);
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += scheduler.stats[k];
    deferredReleases += scheduler.transfers.deferredReleases;
    assert.ok(ledger.counts.computeLayers > 0 && ledger.counts.transfers >= 0);
    // Every request ends exactly once: finished, aborted or rejected.
    for (const q of reqs) {
      const ends = events.filter((e) => e === `${q.id}:finished` || e === `${q.id}:aborted` || e === `${q.id}:rejected`);
      assert.is(ends.length, 1, `${q.id} ended ${ends.length} times`);
    }
    assert.is(events.filter((e) => e.endsWith(':aborted')).length, executor.aborted);
    assert.is(scheduler.kv.device.numUsed, 0);
    assert.is(scheduler.kv.host.numUsed, 0);
    assert.is(scheduler.transfersInFlight, 0);
    assert.not.ok(scheduler.hasWork());
    assert.is(scheduler.stats.prefixLoadFailures, ledger.counts.failedReads);
    assert.is(scheduler.stats.prefixSaves, ledger.counts.saves);
    // Every first token of a finished request came after all of its prompt's KV (the ledger
    // checked each compute); a failed read's chunk was computed, so the count still adds up.
    for (const q of reqs) {
      if (!events.includes(`${q.id}:finished`)) continue;
      assert.ok(events.includes(`${q.id}:first-token`), `${q.id} finished without a first token`);
    }
  });
}

test('ledger: the runs above exercise what they claim to (offloads, reloads, promotions, streaming, swaps, recomputes, prefix loads, failed loads, saves, aborts)', () => {
  for (const [k, v] of Object.entries(total)) assert.ok(v > 0, `no ${k} in any run`);
  assert.ok(deferredReleases > 0, 'no move landed under a save in any run');
});

test('ledger: catches a plan that computes a host layer without staging, and a block freed under a copy', async () => {
  const cost = fakeCost();
  const mk = () => new LedgerExecutor(cost, { deviceBlocks: 8, hostBlocks: 8, blockSize: 16 });
  const empty = (step: number): StepPlan => ({ step, compute: [], transfers: [], tables: [], staged: [], landing: [], freed: [], preempted: [], ended: [] });
  const l1 = mk();
  const p = empty(0);
  p.tables = [0, 1, 2, 3].map((layer) => ({ kind: 'append' as const, seq: 'a', layer, tier: layer === 1 ? ('host' as const) : ('device' as const), blocks: [layer] }));
  p.compute = [{ seq: 'a', phase: 'prefill', cachedBefore: 0, tokens: 16, emitsToken: true }];
  await l1.execute(p).then(
    () => assert.unreachable('accepted'),
    (e: Error) => assert.match(e.message, /a layer 1: computes on its host table without staging/),
  );
  const l2 = mk();
  const q = empty(0);
  q.tables = [0, 1, 2, 3].map((layer) => ({ kind: 'append' as const, seq: 'a', layer, tier: 'device' as const, blocks: [layer] }));
  q.compute = [{ seq: 'a', phase: 'prefill', cachedBefore: 0, tokens: 16, emitsToken: true }];
  q.landing = [{ tier: 'host', seq: 'a', layer: 0, blocks: [5] }];
  q.transfers = [{ id: 1, seq: 'a', kind: 'swap-out', channel: 'd2h', bytes: 16000, moves: [{ layer: 0, from: 'device', to: 'host', pairs: new Int32Array([0, 5]) }], afterLayer: 0 }];
  await l2.execute(q);
  const r = empty(1);
  r.freed = [{ tier: 'device', seq: 'a', layer: 0, blocks: [0] }];
  // The swap-out is 1.6 ms, it may or may not be done; with a slow d2h it is not.
  const l3 = new LedgerExecutor(fakeCost({ d2h: 1e3 }), { deviceBlocks: 8, hostBlocks: 8, blockSize: 16 });
  await l3.execute(q);
  await l3.execute(r).then(
    () => assert.unreachable('accepted'),
    (e: Error) => assert.match(e.message, /device block 0 of a freed while transfer 1 still uses it/),
  );
  assert.ok(new LedgerError('x') instanceof Error);
});

test.run();
