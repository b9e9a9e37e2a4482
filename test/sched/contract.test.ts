// The parts of the contract a model-running executor relies on: token ids in compute items,
// sampled tokens in results, stop tokens, and abort in every state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler } from '../../lib/sched/index.js';
import { SimExecutor } from '../../lib/sim/executor.js';
import { ListArrivals, runSteps } from '../../lib/loop/step-loop.js';
import type { Executor, StepPlan, StepResult } from '../../lib/contract/plan.js';
import type { Request } from '../../lib/contract/request.js';
import type { SeqEvent } from '../../lib/contract/events.js';
import { fakeCost } from './fake-cost.js';

const ids = (n: number, base = 100) => Int32Array.from({ length: n }, (_, i) => base + i);
const req = (id: string, promptLen: number, maxNewTokens: number, extra: Partial<Request> = {}): Request => ({ id, arrival: 0, promptLen, maxNewTokens, promptTokens: ids(promptLen), ...extra });

/** The simulator's clock, with tokens chosen by a function of (seq, index of the output). */
class TokenExecutor implements Executor {
  readonly sim: SimExecutor;
  readonly plans: StepPlan[] = [];
  private readonly count = new Map<string, number>();
  constructor(private readonly pick: (seq: string, i: number) => number, cost = fakeCost()) {
    this.sim = new SimExecutor(cost);
  }
  get now() {
    return this.sim.now;
  }
  get pendingTransfers() {
    return this.sim.pendingTransfers;
  }
  async execute(plan: StepPlan): Promise<StepResult> {
    this.plans.push(plan);
    const r = this.sim.executeSync(plan);
    r.sampled = r.sampled.map((s) => {
      const i = this.count.get(s.seq) ?? 0;
      this.count.set(s.seq, i + 1);
      return { seq: s.seq, token: this.pick(s.seq, i) };
    });
    return r;
  }
  idle(until: number) {
    return this.sim.idle(until);
  }
}

test('compute items carry the ids of the positions they compute; tokens come back in events', async () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 100, maxBatchedTokens: 24, check: true });
  const ex = new TokenExecutor((_seq, i) => 7 + i);
  const events: SeqEvent[] = [];
  await runSteps({ scheduler: s, executor: ex, arrivals: new ListArrivals([req('a', 40, 3)]), onStep: (_p, _r, ev) => events.push(...ev) });
  const items = ex.plans.flatMap((p) => p.compute);
  assert.equal(items.map((c) => [c.phase, c.cachedBefore, c.tokens]), [['prefill', 0, 24], ['prefill', 24, 16], ['decode', 40, 1], ['decode', 41, 1]]);
  assert.equal(Array.from(items[0].tokenIds!), Array.from(ids(40).subarray(0, 24)));
  assert.equal(Array.from(items[1].tokenIds!), Array.from(ids(40).subarray(24)));
  // A decode's input is the token sampled last.
  assert.equal(Array.from(items[2].tokenIds!), [7]);
  assert.equal(Array.from(items[3].tokenIds!), [8]);
  assert.equal(events.map((e) => [e.kind, e.token, e.finishReason]), [['first-token', 7, undefined], ['token', 8, undefined], ['token', 9, undefined], ['finished', undefined, 'length']]);
});

test('sampling a stop token ends the request: the token is emitted, the reason is stop, the blocks come back', async () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 100, check: true });
  const ex = new TokenExecutor((_seq, i) => (i === 2 ? 2 : 50 + i));
  const events: SeqEvent[] = [];
  await runSteps({ scheduler: s, executor: ex, arrivals: new ListArrivals([req('a', 10, 100, { stopTokenIds: [2, 3] })]), onStep: (_p, _r, ev) => events.push(...ev) });
  assert.equal(events.map((e) => [e.kind, e.token ?? e.finishReason]), [['first-token', 50], ['token', 51], ['token', 2], ['finished', 'stop']]);
  assert.is(s.kv.device.numUsed, 0);
  assert.equal(ex.plans.at(-1)!.ended, ['a']);
});

test('a recompute after preemption prefills prompt and output so far, from the right ids', async () => {
  // 24 blocks, two requests of 4 layers: b is preempted at a's growth (see scheduler tests).
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 24, check: true });
  const ex = new TokenExecutor((seq, i) => (seq === 'b' ? 1000 + i : 2000 + i));
  await runSteps({ scheduler: s, executor: ex, arrivals: new ListArrivals([req('a', 32, 40), req('b', 32, 40, { promptTokens: ids(32, 500) })]) });
  const re = ex.plans.flatMap((p) => p.compute).filter((c) => c.seq === 'b' && c.phase === 'prefill' && c.cachedBefore === 0).at(-1)!;
  assert.ok(re.tokens > 32, 'b was not recomputed');
  const g = re.tokens - 32;
  assert.equal(Array.from(re.tokenIds!), [...Array.from(ids(32, 500)), ...Array.from({ length: g }, (_, i) => 1000 + i)]);
});

/** Runs until `when(plan)` and aborts `id` then, reporting the events that follow. */
async function abortWhen(policy: 'baseline' | 'layerkv' | 'load-only', reqs: Request[], id: string, when: (p: StepPlan, s: ReturnType<typeof createScheduler>) => boolean, o: { deviceBlocks: number; preemption?: 'swap'; h2d?: number; storage?: number }) {
  const cost = fakeCost({ h2d: o.h2d, storage: o.storage });
  const s = createScheduler({ policy, cost, deviceBlocks: o.deviceBlocks, hostBlocks: 200, check: true, preemption: o.preemption ?? 'recompute', sloAware: false });
  const ex = new TokenExecutor(() => 5, cost);
  const events: SeqEvent[] = [];
  let done = false;
  let stateAtAbort = '';
  await runSteps({
    scheduler: s,
    executor: ex,
    arrivals: new ListArrivals(reqs),
    onStep: (p, _r, ev) => {
      events.push(...ev);
      if (!done && when(p, s)) {
        stateAtAbort = `${s.request(id)?.status}${s.request(id)?.hold?.inflight ? '+inflight' : ''}`;
        assert.ok(s.abort(id, 'client went away'));
        assert.not.ok(s.abort(id), 'a second abort of the same request is refused');
        done = true;
      }
    },
  });
  assert.ok(done, 'the abort point was never reached');
  const mine = events.filter((e) => e.seq === id);
  assert.equal(mine.filter((e) => e.kind === 'aborted').map((e) => e.reason), ['client went away']);
  assert.not.ok(mine.some((e) => e.kind === 'finished'));
  assert.is(s.kv.device.numUsed + s.kv.host.numUsed, 0);
  assert.not.ok(s.hasWork());
  return { stateAtAbort, events };
}

test('abort while waiting, prefilling and decoding', async () => {
  // b waits behind a: 26 blocks hold one of them (16 a request).
  const a = req('a', 60, 4);
  const b = req('b', 60, 2);
  assert.is((await abortWhen('baseline', [a, b], 'b', (p) => p.step === 0, { deviceBlocks: 26 })).stateAtAbort, 'waiting');
  const long = req('c', 3000, 2);
  assert.is((await abortWhen('baseline', [long], 'c', (p) => p.step === 0, { deviceBlocks: 1000 })).stateAtAbort, 'prefilling');
  assert.is((await abortWhen('baseline', [req('d', 20, 30)], 'd', (p) => p.step === 3, { deviceBlocks: 100 })).stateAtAbort, 'decoding');
});

test('abort while swapped out, and while its swap-out is in flight', async () => {
  // As the scheduler's swap test: b is swapped out at step 17 by a's growth.
  const reqs = [req('a', 32, 40), req('b', 32, 40)];
  const r = await abortWhen('baseline', reqs, 'b', (p) => p.preempted.includes('b'), { deviceBlocks: 24, preemption: 'swap' });
  assert.is(r.stateAtAbort, 'swapped+inflight');
  const r2 = await abortWhen('baseline', reqs, 'b', (_p, s) => s.request('b')?.status === 'swapped' && s.request('b')!.hold!.inflight === 0, { deviceBlocks: 24, preemption: 'swap' });
  assert.is(r2.stateAtAbort, 'swapped');
});

test('abort with LayerKV offloads and promotions in flight, and a prefix request with loads in flight', async () => {
  const lk = await abortWhen('layerkv', [req('a', 60, 2), req('b', 60, 4)], 'b', (p) => p.transfers.some((t) => t.seq === 'b' && t.kind === 'promote'), { deviceBlocks: 26, h2d: 1e6 });
  assert.is(lk.stateAtAbort, 'decoding+inflight');
  const prefix = { chunkTokens: 256, chunkHashes: ['h0', 'h1', 'h2'], storedChunks: 3 };
  const ck = await abortWhen('load-only', [req('c', 1024, 2, { prefix })], 'c', (_p, s) => (s.request('c')?.hold?.inflight ?? 0) > 0, { deviceBlocks: 1000, storage: 1e8 });
  assert.is(ck.stateAtAbort, 'prefilling+inflight');
});

test('a result that samples the wrong sequences is refused', () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 100 });
  s.add(req('a', 10, 2), 0);
  const p = s.schedule(0);
  assert.throws(() => s.onResult(p, { start: 0, end: 0.02, transfersDone: [], sampled: [] }), /step 0 has 1 emitting items but the result samples 0 tokens/);
  assert.throws(() => s.onResult(p, { start: 0, end: 0.02, transfersDone: [], sampled: [{ seq: 'x', token: 1 }] }), /sampled token 0 is for x, plan item is a/);
});

test('requests with bad token ids, stop ids or SLOs are rejected naming the field', async () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 100 });
  const bad: Request[] = [
    req('p', 10, 2, { promptTokens: ids(9) }),
    req('n', 3, 2, { promptTokens: Int32Array.from([1, -2, 3]) }),
    req('s', 10, 2, { stopTokenIds: [1.5] }),
    req('t', 10, 2, { tpotSlo: NaN }),
    req('u', 10, 2, { ttftSlo: -1 }),
  ];
  for (const r of bad) s.add(r, 0);
  const ev = s.onResult(s.schedule(0), { start: 0, end: 0, transfersDone: [], sampled: [] });
  assert.equal(ev.map((e) => [e.seq, e.kind, e.reason]), [
    ['p', 'rejected', 'promptTokens has 9 ids, promptLen is 10'],
    ['n', 'rejected', 'promptTokens[1] = -2 is negative'],
    ['s', 'rejected', 'stopTokenIds[0] must be an integer in [0, 2^31), got 1.5'],
    ['t', 'rejected', 'tpotSlo must be a positive number of seconds (or left out), got NaN'],
    ['u', 'rejected', 'ttftSlo must be a positive number of seconds (or left out), got -1'],
  ]);
});

test.run();
