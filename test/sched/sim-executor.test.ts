import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimExecutor } from '../../lib/sim/executor.js';
import { PLACEHOLDER_TOKEN, type StepPlan, type Transfer } from '../../lib/contract/plan.js';
import { fakeCost } from './fake-cost.js';

const plan = (compute: StepPlan['compute'], transfers: Transfer[] = []): StepPlan => ({ step: 0, compute, transfers, tables: [], staged: [], landing: [], freed: [], preempted: [], ended: [] });
const decode = { seq: 'a', phase: 'decode' as const, tokens: 1, cachedBefore: 10, emitsToken: true };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
const move = (layer: number) => [{ layer, from: 'device' as const, to: 'host' as const, pairs: new Int32Array([0, 0]) }];
/** 1e5 bytes at 1e7 B/s: 10 ms on either PCIe direction of the fake cost. */
const tr = (id: number, extra: Partial<Transfer>): Transfer => ({ id, seq: 'a', kind: 'offload', channel: 'd2h', bytes: 1e5, moves: move(0), ...extra });

test('a step takes the cost model time, split evenly over layers; emitting items sample placeholders', async () => {
  const ex = new SimExecutor(fakeCost());
  const r = await ex.execute(plan([{ ...decode, phase: 'prefill', tokens: 29, emitsToken: false }, { ...decode, seq: 'b' }]));
  close(r.start, 0);
  close(r.end, 0.04);
  close(ex.now, 0.04);
  assert.equal(r.sampled, [{ seq: 'b', token: PLACEHOLDER_TOKEN }]);
});

test('afterLayer transfers start when their layer ends; a channel is in order', async () => {
  const ex = new SimExecutor(fakeCost());
  const r = await ex.execute(plan([{ ...decode, tokens: 30, phase: 'prefill' }], [tr(1, { afterLayer: 0 }), tr(2, { afterLayer: 1 })]));
  close(r.end, 0.04);
  // Layer 0 ends at 10 ms -> done at 20; layer 1 ends at 20 -> done at 30.
  assert.equal(r.transfersDone, [{ id: 1, at: 0.02 }, { id: 2, at: 0.03 }]);
});

test('a channel takes transfers by stage: an earlier layer\'s copy is not stuck behind a later one issued first', async () => {
  const ex = new SimExecutor(fakeCost());
  const r = await ex.execute(plan([{ ...decode, tokens: 30, phase: 'prefill' }], [tr(1, { afterLayer: 2 }), tr(2, { afterLayer: 0 })]));
  // Stage 0 first (ready at 10 ms, done at 20), then stage 2 (ready at 30, done at 40).
  assert.equal(r.transfersDone, [{ id: 2, at: 0.02 }, { id: 1, at: 0.04 }]);
});

test('beforeLayer loads gate their layer and everything after it', async () => {
  const ex = new SimExecutor(fakeCost());
  // 3e5 bytes = 30 ms; layer 1 cannot start before 30 ms. Layers 2.75 ms each (11 ms step).
  const load = tr(7, { kind: 'promote', channel: 'h2d', bytes: 3e5, beforeLayer: 1 });
  const r = await ex.execute(plan([decode], [load]));
  close(r.end, 0.03 + 3 * 0.00275);
  assert.equal(r.transfersDone, [{ id: 7, at: 0.03 }]);
});

test('a transfer after layer a can gate layer b > a, and `after` orders transfers across channels', async () => {
  const ex = new SimExecutor(fakeCost());
  // 4 layers of 10 ms. Offload 1 after layer 0 (10 -> 20 ms) gates layer 2; reload 2 waits for
  // offload 1 and gates layer 3: h2d 20 -> 30 ms. Layer 2 starts at max(20, 20) = 20 ms, ends
  // at 30; layer 3 starts at 30, ends at 40.
  const off = tr(1, { afterLayer: 0, beforeLayer: 2 });
  const rel = tr(2, { kind: 'reload', channel: 'h2d', after: [1], beforeLayer: 3 });
  const r = await ex.execute(plan([{ ...decode, tokens: 30, phase: 'prefill' }], [off, rel]));
  close(r.end, 0.04);
  assert.equal(r.transfersDone, [{ id: 1, at: 0.02 }, { id: 2, at: 0.03 }]);
  // Slower offload (30 ms): layer 2 waits until 40 ms, the reload runs 40 -> 50, layer 3 50 -> 60.
  const ex2 = new SimExecutor(fakeCost());
  const r2 = await ex2.execute(plan([{ ...decode, tokens: 30, phase: 'prefill' }], [{ ...off, bytes: 3e5 }, rel]));
  close(r2.end, 0.06);
  assert.equal(r2.transfersDone, [{ id: 1, at: 0.04 }, { id: 2, at: 0.05 }]);
});

test('`after` a transfer of an earlier step still in flight waits for its completion', async () => {
  const ex = new SimExecutor(fakeCost());
  await ex.execute(plan([], [tr(1, { bytes: 1e6 })])); // d2h busy 0 -> 100 ms
  const r = await ex.execute(plan([], [tr(2, { kind: 'reload', channel: 'h2d', after: [1] })]));
  assert.equal(r.transfersDone, []);
  const idle = await ex.idle(Infinity);
  assert.equal(idle.transfersDone, [{ id: 1, at: 0.1 }]);
  assert.equal((await ex.idle(Infinity)).transfersDone, [{ id: 2, at: 0.11 }]);
});

test('idle moves to the next completion or the deadline, whichever is first', async () => {
  const ex = new SimExecutor(fakeCost(), { storageBandwidth: 1e6, storageLatency: 0 });
  await ex.execute(plan([], [tr(1, { kind: 'prefix-read', channel: 'storage', bytes: 1e6, moves: [], chunk: { index: 0, hash: 'h', dest: [] } })]));
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

test('copies that share the compute cores lengthen the step by their time; on their own engines they overlap it', async () => {
  // Step: 10 ms + 1 ms per token = 40 ms for 30 tokens; the offload is 10 ms of d2h, the store read is not a copy.
  const read: Transfer = { id: 3, seq: 'a', kind: 'prefix-read', channel: 'storage', bytes: 1e8, chunk: { index: 0, hash: 'h' }, moves: [] } as unknown as Transfer;
  const p = () => plan([{ ...decode, tokens: 30, phase: 'prefill' }], [tr(1, { afterLayer: 0 }), tr(2, { channel: 'h2d' }), read]);
  const apart = await new SimExecutor(fakeCost()).execute(p());
  close(apart.end, 0.04);
  const shared = await new SimExecutor({ ...fakeCost(), copiesShareCompute: true }).execute(p());
  close(shared.end, 0.06);
});

test('a wake cost lengthens a step that follows a stretch without compute, and no other', async () => {
  // Step: 10 ms + 1 ms per token = 11 ms for one decode; the wake is 5 ms after >= 50 ms idle.
  const ex = new SimExecutor({ ...fakeCost(), wake: { afterIdleSeconds: 0.05, seconds: 0.005 } });
  close((await ex.execute(plan([decode]))).end, 0.011); // at the start: not idle yet
  close((await ex.execute(plan([decode]))).end, 0.022); // back to back
  await ex.idle(0.052); // 30 ms without compute: short of the threshold
  let r = await ex.execute(plan([decode]));
  close(r.end - r.start, 0.011);
  await ex.idle(0.2);
  r = await ex.execute(plan([decode]));
  close(r.end - r.start, 0.016);
  // A step of transfers only is no compute: the next compute step still counts the idle.
  await ex.idle(0.4);
  await ex.execute(plan([], [tr(9, {})]));
  r = await ex.execute(plan([decode]));
  close(r.end - r.start, 0.016);
  assert.throws(() => new SimExecutor({ ...fakeCost(), wake: { afterIdleSeconds: 0.05, seconds: -1 } }), /SimExecutor: cost: wake.seconds must be a finite number of seconds >= 0, got -1/);
});

test('bad transfers are refused with the field named', () => {
  const ex = new SimExecutor(fakeCost());
  assert.throws(() => ex.executeSync(plan([decode], [tr(1, { beforeLayer: 9 })])), /beforeLayer must be a layer in \[0, 4\)/);
  assert.throws(() => ex.executeSync(plan([decode], [tr(2, { afterLayer: 2, beforeLayer: 2 })])), /transfer 2 gates layer 2 but is ready only after layer 2/);
  assert.throws(() => ex.executeSync(plan([decode], [tr(3, { after: [4] }), tr(4, {})])), /transfer 3 waits for transfer 4, issued after it/);
  assert.throws(() => ex.executeSync(plan([decode], [tr(5, {}), tr(5, {})])), /transfer id 5 issued twice/);
  assert.throws(() => new SimExecutor(fakeCost(), { storageBandwidth: 0 }), /storageBandwidth must be a finite number of bytes\/s >= 1, got 0/);
  assert.throws(() => new SimExecutor(fakeCost(), { start: NaN }), /start must be a time in \[0, 1e9\] s, got NaN/);
});

test.run();
