// Every policy on a seeded workload under memory pressure, with the invariant checker on
// after every step: no pool over capacity, no block owned twice, FCFS admission order for
// FCFS policies, the LayerKV offload constraint; at the end every block is free. The same
// seed gives the same result.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, POLICIES, type PolicyName } from '../../lib/sched/index.js';
import { simulate } from '../../lib/sim/simulate.js';
import { deployment } from '../../lib/cost/presets.js';
import { synthetic } from '../../lib/workload/synthetic.js';
import { annotatePrefixHits } from '../../lib/workload/prefix.js';

const dep = deployment('Llama-2-7B', 'A100-80G');

function workload(seed: number) {
  const reqs = synthetic({ n: 24, rate: 8, promptLen: [1100, 1500], outputLen: [4, 120], ttftSlo: 2, tpotSlo: 0.1, prefix: { groups: 3, sharedTokens: 1024, chunkTokens: 256 }, seed });
  return annotatePrefixHits(reqs, { capacityChunks: 64 });
}

async function run(policy: PolicyName, seed: number, check = true, preemption: 'recompute' | 'swap' = 'recompute') {
  // 5000 layer-blocks = 156 blocks per layer = 2496 tokens for all layers: heavy pressure.
  const scheduler = createScheduler({ policy, cost: dep.cost, deviceBlocks: 5000, hostBlocks: 20_000, maxBatchedTokens: 512, check, preemption });
  const r = await simulate({ requests: workload(seed), scheduler, deployment: dep, keepEvents: true });
  return { r, scheduler };
}

for (const policy of POLICIES) {
  test(`${policy}: invariants hold every step, all requests finish, all blocks are freed`, async () => {
    const { r, scheduler } = await run(policy, 7);
    assert.is(r.rejected.length, 0);
    assert.is(r.metrics.completed, 24);
    assert.is(scheduler.kv.device.numUsed, 0);
    assert.is(scheduler.kv.host.numUsed, 0);
    assert.is(scheduler.transfersInFlight, 0);
    assert.not.ok(scheduler.hasWork());
  });

  test(`${policy}: same seed, same result`, async () => {
    const a = await run(policy, 11, false);
    const b = await run(policy, 11, false);
    assert.equal(a.r.events, b.r.events);
    assert.equal(a.r.metrics, b.r.metrics);
  });
}

// Preemption by swap: victims' KV goes to the host and comes back, so both tiers' capacity
// and ownership are checked across swap-outs still in flight and swapped-out waiters.
for (const policy of ['baseline', 'layerkv'] as const) {
  test(`${policy}, preemption swap: invariants hold every step, all requests finish, all blocks are freed`, async () => {
    const { r, scheduler } = await run(policy, 7, true, 'swap');
    assert.is(r.rejected.length, 0);
    assert.is(r.metrics.completed, 24);
    assert.ok(scheduler.stats.swapOuts > 0, 'no victim was swapped out');
    // Every victim came back; under LayerKV a victim's host layers (not yet promoted) are
    // not swapped out but do come back by swap-in, so there can be more swap-ins.
    assert.ok(scheduler.stats.swapIns >= scheduler.stats.swapOuts);
    // Every token once: a swapped request does not emit a second first token.
    const firsts = r.events!.filter((e) => e.kind === 'first-token');
    assert.is(firsts.length, 24);
    assert.is(new Set(firsts.map((e) => e.seq)).size, 24);
    assert.is(scheduler.kv.device.numUsed, 0);
    assert.is(scheduler.kv.host.numUsed, 0);
    assert.is(scheduler.transfersInFlight, 0);
    assert.not.ok(scheduler.hasWork());
  });

  test(`${policy}, preemption swap: same seed, same result`, async () => {
    const a = await run(policy, 11, false, 'swap');
    const b = await run(policy, 11, false, 'swap');
    assert.equal(a.r.events, b.r.events);
    assert.equal(a.r.metrics, b.r.metrics);
  });
}

test('pressure makes the policies differ: preemptions under baseline, offloads under layerkv, loads under cake', async () => {
  assert.ok((await run('baseline', 7, false)).scheduler.stats.preemptions > 0);
  assert.ok((await run('layerkv', 7, false)).scheduler.stats.offloads > 0);
  assert.ok((await run('cake', 7, false)).scheduler.stats.prefixLoads > 0);
});

test.run();
