import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimExecutor } from '../../lib/sim/executor.js';
import type { StepPlan, Transfer } from '../../lib/sched/plan.js';
import { fakeCost } from './fake-cost.js';

const plan = (compute: StepPlan['compute'], transfers: Transfer[] = []): StepPlan => ({ step: 0, compute, transfers, allocated: [], freed: [], preempted: [] });
const decode = { seq: 'a', phase: 'decode' as const, tokens: 1, cachedBefore: 10, emitsToken: true };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('a step takes the cost model time, split evenly over layers', async () => {
  const ex = new SimExecutor(fakeCost());
  const r = await ex.execute(plan([{ ...decode, phase: 'prefill', tokens: 30, emitsToken: false }]));
  close(r.start, 0);
  close(r.end, 0.04);
  close(ex.now, 0.04);
});

test('afterLayer transfers start when their layer ends; channels are FIFO', async () => {
  const ex = new SimExecutor(fakeCost());
  // 4 layers of 10 ms; 1e5 bytes at 1e7 B/s = 10 ms each.
  const t = (id: number, afterLayer: number): Transfer => ({ id, seq: 'a', kind: 'offload', channel: 'd2h', bytes: 1e5, layers: [afterLayer], afterLayer });
  const r = await ex.execute(plan([{ ...decode, tokens: 30, phase: 'prefill' }], [t(1, 0), t(2, 1)]));
  close(r.end, 0.04);
  // Layer 0 ends at 10 ms -> done at 20; layer 1 ends at 20 -> done at 30. Both before the step ends.
  assert.equal(r.transfersDone.map((d) => d.id), [1, 2]);
  close(r.transfersDone[0].at, 0.02);
  close(r.transfersDone[1].at, 0.03);
});

test('beforeLayer loads gate their layer and everything after it', async () => {
  const ex = new SimExecutor(fakeCost());
  // 3e5 bytes = 30 ms; layer 1 cannot start before 30 ms. Layers 2.75 ms each (11 ms step).
  const load: Transfer = { id: 7, seq: 'a', kind: 'load', channel: 'h2d', bytes: 3e5, layers: [1], beforeLayer: 1 };
  const r = await ex.execute(plan([decode], [load]));
  close(r.end, 0.03 + 3 * 0.00275);
  assert.equal(r.transfersDone, [{ id: 7, at: 0.03 }]);
});

test('idle moves to the next completion or the deadline, whichever is first', async () => {
  const ex = new SimExecutor(fakeCost(), { storageBandwidth: 1e6, storageLatency: 0 });
  await ex.execute(plan([], [{ id: 1, seq: 'a', kind: 'prefix-load', channel: 'storage', bytes: 1e6, layers: [0], chunk: 0 }]));
  assert.is(ex.pendingTransfers, 1);
  let r = await ex.idle(0.5);
  close(r.end, 0.5);
  assert.equal(r.transfersDone, []);
  r = await ex.idle(Infinity);
  close(r.end, 1);
  assert.equal(r.transfersDone, [{ id: 1, at: 1 }]);
  r = await ex.idle(Infinity);
  close(r.end, 1);
});

test('bad transfers are refused with the field named', async () => {
  const ex = new SimExecutor(fakeCost());
  await assert.throws(() => ex.executeSync(plan([decode], [{ id: 1, seq: 'a', kind: 'load', channel: 'h2d', bytes: 1, layers: [9], beforeLayer: 9 }])), /beforeLayer must be a layer in \[0, 4\)/);
  assert.throws(() => new SimExecutor(fakeCost(), { storageBandwidth: 0 }), /storageBandwidth/);
});

test.run();
