import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, interleavedKeep, Scheduler } from '../../lib/sched/index.js';
import { SimExecutor } from '../../lib/sim/executor.js';
import { simulate } from '../../lib/sim/simulate.js';
import type { StepPlan, Transfer } from '../../lib/contract/plan.js';
import type { Request } from '../../lib/contract/request.js';
import { fakeCost } from './fake-cost.js';

const req = (id: string, promptLen: number, maxNewTokens: number, extra: Partial<Request> = {}): Request => ({ id, arrival: 0, promptLen, maxNewTokens, ...extra });
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);
/** Appended or moved-in blocks of a plan's table updates, as (seq, layer, tier, count). */
const grown = (p: StepPlan) => p.tables.flatMap((u) => (u.kind === 'drop' ? [] : [{ seq: u.seq, layer: u.layer, tier: u.tier, blocks: u.blocks, kind: u.kind }]));
const layersOf = (t: Transfer) => (t.chunk ? t.chunk.dest.map((d) => d.layer) : t.moves.map((m) => m.layer));

test('baseline: chunked prefill under the budget, then decodes; blocks for all layers at admission', async () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 100, maxBatchedTokens: 64, check: true });
  const ex = new SimExecutor(fakeCost());
  s.add(req('a', 100, 3), 0);
  const p0 = s.schedule(0);
  assert.equal(p0.compute, [{ seq: 'a', phase: 'prefill', tokens: 64, cachedBefore: 0, emitsToken: false }]);
  // ceil(100 / 16) = 7 blocks in each of 4 layers, all on the device.
  assert.equal(grown(p0).map((c) => [c.layer, c.tier, c.blocks.length]), [0, 1, 2, 3].map((l) => [l, 'device', 7]));
  assert.equal(s.onResult(p0, ex.executeSync(p0)), []);
  const p1 = s.schedule(ex.now);
  assert.equal(p1.compute, [{ seq: 'a', phase: 'prefill', tokens: 36, cachedBefore: 64, emitsToken: true }]);
  const e1 = s.onResult(p1, ex.executeSync(p1));
  assert.equal(e1.map((e) => [e.seq, e.kind]), [['a', 'first-token']]);
  close(e1[0].at, 0.074 + 0.046);
  const p2 = s.schedule(ex.now);
  assert.equal(p2.compute, [{ seq: 'a', phase: 'decode', tokens: 1, cachedBefore: 100, emitsToken: true }]);
  assert.equal(p2.tables, []);
  assert.equal(s.onResult(p2, ex.executeSync(p2)).map((e) => e.kind), ['token']);
  const p3 = s.schedule(ex.now);
  const e3 = s.onResult(p3, ex.executeSync(p3));
  assert.equal(e3.map((e) => [e.kind, e.finishReason]), [['token', undefined], ['finished', 'length']]);
  assert.is(s.kv.device.numUsed, 0);
  // One more plan tells the executor: the request ended, its 28 blocks are free.
  assert.ok(s.hasWork());
  const p4 = s.schedule(ex.now);
  assert.equal(p4.compute, []);
  assert.equal(p4.ended, ['a']);
  assert.equal(p4.tables, [{ kind: 'drop', seq: 'a' }]);
  assert.is(p4.freed.reduce((n, f) => n + f.blocks.length, 0), 28);
  s.onResult(p4, ex.executeSync(p4));
  assert.not.ok(s.hasWork());
});

test('baseline: FCFS head-of-line, and preemption by recompute of the latest admitted', async () => {
  // 24 blocks, watermark 1: two sequences of 4 layers fit up to 3 blocks each.
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 24, check: true });
  const r = await simulate({ requests: [req('a', 32, 40), req('b', 32, 40)], scheduler: s, cost: fakeCost(), keepEvents: true });
  const ev = r.events!;
  const kinds = (id: string) => ev.filter((e) => e.seq === id).map((e) => e.kind);
  assert.ok(kinds('b').includes('preempted'));
  assert.not.ok(kinds('a').includes('preempted'));
  assert.is(kinds('a').filter((k) => k === 'token' || k === 'first-token').length, 40);
  assert.is(kinds('b').filter((k) => k === 'token' || k === 'first-token').length, 40);
  // b's recompute prefill emits an ordinary token, not a second first token.
  assert.is(kinds('b').filter((k) => k === 'first-token').length, 1);
  assert.is(r.metrics.completed, 2);
  assert.is(s.stats.preemptions, 1);
  assert.is(s.kv.device.numUsed, 0);
});

test('baseline, preemption swap: the victim is copied to the host, freed on completion, and resumes without re-prefilling', async () => {
  // As the recompute test above, with 16 host blocks. a and b prefill 32 tokens in step 0
  // (2 blocks a layer: 16 of 24), both grow to 3 blocks a layer at token 33 (24 of 24). In
  // step 17 a's 49th token needs 4 more blocks: b, the newest, is swapped out, one d2h
  // transfer per layer of 48 tokens x 1000 bytes, its 3 device blocks a layer moving to the
  // host. a waits for those copies rather than preempting itself. b resumes when a's finish
  // frees the device, by h2d swap-ins, and decodes once they land.
  const cost = fakeCost();
  const s = createScheduler({ policy: 'baseline', cost, deviceBlocks: 24, hostBlocks: 16, preemption: 'swap', check: true });
  const steps: { plan: StepPlan; done: number[]; deviceUsed: number }[] = [];
  const r = await simulate({
    requests: [req('a', 32, 40), req('b', 32, 40)],
    scheduler: s,
    cost,
    keepEvents: true,
    onStep: (plan, result) => steps.push({ plan, done: result.transfersDone.map((d) => d.id), deviceUsed: s.kv.device.numUsed }),
  });
  const plans = steps.map((x) => x.plan);
  const withTransfers = plans.filter((p) => p.transfers.length > 0);
  assert.equal(withTransfers.map((p) => [p.step, p.transfers.map((t) => t.kind)]), [
    [17, ['swap-out', 'swap-out', 'swap-out', 'swap-out']],
    [withTransfers[1].step, ['swap-in', 'swap-in', 'swap-in', 'swap-in']],
  ]);
  const out = plans[17];
  assert.equal(out.preempted, ['b']);
  assert.equal(out.compute, []);
  assert.equal(out.transfers.map((t) => [t.seq, t.channel, t.bytes, layersOf(t)]), [0, 1, 2, 3].map((l) => ['b', 'd2h', 48000, [l]]));
  for (const t of out.transfers) {
    const mv = t.moves!;
    assert.equal(mv.map((m) => [m.layer, m.from, m.to, m.pairs.length]), [[layersOf(t)[0], 'device', 'host', 6]]);
  }
  assert.equal(grown(out).map((c) => [c.seq, c.tier, c.blocks.length]), [0, 1, 2, 3].map(() => ['b', 'host', 3]));
  // Nothing of b is freed in the swap-out step: the copies still read its device blocks.
  assert.not.ok(out.freed.some((f) => f.seq === 'b'));
  assert.is(steps[17].deviceUsed, 24);
  // Each layer's device blocks are freed in the plan after the step whose result reported
  // its swap-out complete, never before; those are the source blocks of its moves.
  for (const t of out.transfers) {
    const doneAt = steps.findIndex((x) => x.done.includes(t.id));
    assert.ok(doneAt >= 17);
    const freedAt = plans.findIndex((p) => p.freed.some((f) => f.seq === 'b' && f.tier === 'device' && f.layer === layersOf(t)[0]));
    assert.is(freedAt, doneAt + 1);
    const src = Array.from(t.moves![0].pairs.filter((_, i) => i % 2 === 0));
    assert.equal(plans[freedAt].freed.find((f) => f.seq === 'b' && f.layer === layersOf(t)[0])!.blocks, src);
  }
  // b decodes again only after every swap-in landed, from its 48 cached tokens.
  const inStep = withTransfers[1].step;
  assert.ok(plans[inStep].transfers.every((t) => t.channel === 'h2d' && t.bytes === 48000 && t.moves![0].to === 'device'));
  const lastIn = Math.max(...plans[inStep].transfers.map((t) => steps.findIndex((x) => x.done.includes(t.id))));
  const bDecodes = plans.filter((p) => p.step > 17 && p.compute.some((c) => c.seq === 'b'));
  assert.ok(bDecodes[0].step > lastIn);
  assert.equal(bDecodes[0].compute.find((c) => c.seq === 'b'), { seq: 'b', phase: 'decode', tokens: 1, cachedBefore: 48, emitsToken: true });
  // Its prompt was computed once, and it emitted one first token and 40 tokens in all.
  const bPrefill = plans.flatMap((p) => p.compute).filter((c) => c.seq === 'b' && c.phase === 'prefill');
  assert.equal(bPrefill.map((c) => c.tokens), [32]);
  const kinds = r.events!.filter((e) => e.seq === 'b').map((e) => e.kind);
  assert.is(kinds.filter((k) => k === 'first-token').length, 1);
  assert.is(kinds.filter((k) => k === 'token' || k === 'first-token').length, 40);
  assert.is(r.metrics.completed, 2);
  assert.equal([s.stats.preemptions, s.stats.swapOuts, s.stats.swapIns], [1, 4, 4]);
  assert.is(s.kv.device.numUsed, 0);
  assert.is(s.kv.host.numUsed, 0);
  assert.is(s.transfersInFlight, 0);
});

test('preemption swap falls back to recompute when the host cannot hold the victim', async () => {
  // b's 12 device blocks do not fit 8 host blocks: it is recomputed as under 'recompute'.
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 24, hostBlocks: 8, preemption: 'swap', check: true });
  const plans: StepPlan[] = [];
  const r = await simulate({ requests: [req('a', 32, 40), req('b', 32, 40)], scheduler: s, cost: fakeCost(), onStep: (p) => plans.push(p) });
  assert.equal(plans.flatMap((p) => p.transfers), []);
  assert.equal(plans[17].preempted, ['b']);
  assert.ok(plans[17].freed.some((f) => f.seq === 'b' && f.tier === 'device'));
  assert.is(s.stats.swapOuts, 0);
  assert.is(r.metrics.completed, 2);
  assert.is(s.kv.device.numUsed + s.kv.host.numUsed, 0);
});

test('layerkv: the preemption victim is the newest sequence that holds device blocks, not one parked on the host', async () => {
  // 28 blocks, 3 sequences of 32 tokens (2 blocks a layer, 8 each) growing to 72 tokens.
  // Step 1: a and b cross a block boundary and c (newest, all device) is recomputed; it comes
  // back with its layers on the host (the device is full) and waits for promotion. Step 17:
  // a and b cross the next boundary; c holds no device block, so recomputing it would free
  // nothing and cost its whole prefill (the old choice recomputed c, then b). b is the victim.
  const cost = fakeCost({ h2d: 1e6 });
  const s = createScheduler({ policy: 'layerkv', cost, deviceBlocks: 28, check: true, sloAware: false });
  const plans: StepPlan[] = [];
  const r = await simulate({ requests: [req('a', 32, 40), req('b', 32, 40), req('c', 32, 40)], scheduler: s, cost, onStep: (p) => plans.push(p) });
  const victims = plans.flatMap((p) => p.preempted.map((id) => [p.step, id]));
  assert.equal(victims, [[1, 'c'], [17, 'b']]);
  // Every victim gave device blocks back in the step it was preempted.
  for (const p of plans) for (const id of p.preempted) assert.ok(p.freed.some((f) => f.seq === id && f.tier === 'device'), `${id} freed no device block at step ${p.step}`);
  assert.is(r.metrics.completed, 3);
  assert.is(s.kv.device.numUsed, 0);
  assert.is(s.kv.host.numUsed, 0);
});

test('interleavedKeep spreads kept layers and keeps the last one first', () => {
  assert.equal(interleavedKeep(8, 2), [false, false, false, true, false, false, false, true]);
  assert.equal(interleavedKeep(4, 4), [true, true, true, true]);
  assert.equal(interleavedKeep(4, 0), [false, false, false, false]);
  assert.equal(interleavedKeep(4, 1), [false, false, false, true]);
});

test('layerkv: admits a prefill with staging sets for its host layers; each host layer offloads after its compute, and staging is reused in turn', async () => {
  // a takes 16 of 26 blocks (4 layers x 4); b finds 9 free (watermark 1): room for 2 layers'
  // worth, which its 2 staging sets of 4 blocks take, so b keeps no layer on the device
  // (minKeep is 0: one host layer's 64 KB offload is 6.4 ms behind a 130 ms prefill).
  // Slow h2d: streaming b's host layers would stretch the step, so b waits for promotion.
  const cost = fakeCost({ h2d: 1e6 });
  const s = createScheduler({ policy: 'layerkv', cost, deviceBlocks: 26, check: true });
  const plans: StepPlan[] = [];
  const r = await simulate({ requests: [req('a', 60, 2), req('b', 60, 2)], scheduler: s, cost, keepEvents: true, onStep: (p) => plans.push(p) });
  const p0 = plans[0];
  assert.equal(p0.compute.map((c) => [c.seq, c.tokens]), [['a', 60], ['b', 60]]);
  assert.equal(grown(p0).filter((c) => c.seq === 'b').map((c) => c.tier), ['host', 'host', 'host', 'host']);
  assert.equal(p0.staged.map((x) => [x.seq, x.blocks.length]), [['b', 4], ['b', 4]]);
  // Layers 0 and 2 compute on set 0, layers 1 and 3 on set 1.
  const staging = p0.compute[1].staging!;
  assert.equal(staging.map((x) => x.layer), [0, 1, 2, 3]);
  assert.equal(staging[0].blocks, staging[2].blocks);
  assert.equal(staging[1].blocks, staging[3].blocks);
  assert.equal(p0.staged.map((x) => x.blocks), [staging[0].blocks, staging[1].blocks]);
  // Offload of layer l: its 4 staging blocks to its host table, after layer l; the set's next
  // user (layer l + 2) waits for it, having no reload to order behind it.
  const off = p0.transfers;
  assert.equal(off.map((t) => [t.kind, t.channel, t.afterLayer, t.beforeLayer, t.bytes]), [0, 1, 2, 3].map((l) => ['offload', 'd2h', l, l < 2 ? l + 2 : undefined, 64000]));
  const bTables = grown(p0).filter((c) => c.seq === 'b');
  off.forEach((t, l) => assert.equal(Array.from(t.moves[0].pairs), staging[l].blocks.flatMap((x, i) => [x, bTables[l].blocks[i]])));
  // Both first tokens come from step 0: b did not queue behind a.
  const firsts = r.events!.filter((e) => e.kind === 'first-token');
  assert.is(firsts.length, 2);
  close(firsts[0].at, firsts[1].at);
  // The staging sets go back once the last offloads reading them land.
  const freedStaging = plans.flatMap((p) => p.freed.filter((f) => f.seq === 'b' && f.layer === -1).map((f) => [p.step, f.blocks]));
  assert.equal(freedStaging.map((x) => x[1]), [staging[0].blocks, staging[1].blocks]);
  // b's host layers are promoted once a's blocks are free: 64 KB a layer at 1 MB/s is 64 ms
  // against an 11 ms decode step, so gating the step on them would not hide; they run on
  // their own (no beforeLayer) and b decodes after they land.
  const loads = plans.flatMap((p) => p.transfers).filter((t) => t.kind === 'promote' && t.seq === 'b');
  assert.equal(loads.map((t) => [t.channel, t.beforeLayer, t.moves[0].to, t.bytes]), [0, 1, 2, 3].map(() => ['h2d', undefined, 'device', 64000]));
  const promotedAt = plans.findIndex((p) => p.transfers.some((t) => t.kind === 'promote'));
  assert.not.ok(plans[promotedAt].compute.some((c) => c.seq === 'b'));
  assert.equal([s.stats.offloads, s.stats.promotions, s.stats.reloads, s.stats.preemptions], [4, 4, 0, 0]);
  assert.is(s.kv.device.numUsed + s.kv.host.numUsed, 0);
});

test('layerkv: a later prefill chunk reloads each host layer\'s earlier KV into staging first, behind that set\'s last offload', async () => {
  // a (16 tokens, decoding 40 more) holds 4 device blocks and will need 12 more. b (100
  // tokens, 7 blocks a layer) arrives while a decodes, finds 32 - 1 - 4 - 12 = 15 blocks:
  // its two staging sets take 14, so every layer's table is on the host. With a 64-token
  // budget less a's decode, b prefills [0, 63) then [63, 100). Chunk 2 reloads blocks [0, 4)
  // of each layer (positions [0, 63)) before the layer computes, and offloads blocks [3, 7)
  // after it: block 3 goes again whole, since it now also holds position 63.
  const cost = fakeCost();
  const s = createScheduler({ policy: 'layerkv', cost, deviceBlocks: 32, hostBlocks: 100, maxBatchedTokens: 64, check: true, sloAware: false });
  const plans: StepPlan[] = [];
  await simulate({ requests: [req('a', 16, 40), req('b', 100, 1, { arrival: 0.05 })], scheduler: s, cost, onStep: (p) => plans.push(p) });
  const bSteps = plans.filter((p) => p.compute.some((c) => c.seq === 'b'));
  assert.equal(bSteps.map((p) => p.compute.filter((c) => c.seq === 'b').map((c) => [c.cachedBefore, c.tokens])[0]), [[0, 63], [63, 37]]);
  const t1 = bSteps[1].transfers.filter((t) => t.seq === 'b');
  const reloads = t1.filter((t) => t.kind === 'reload');
  const offs = t1.filter((t) => t.kind === 'offload');
  assert.equal(reloads.map((t) => [t.moves[0].layer, t.beforeLayer, t.moves[0].pairs.length / 2, t.bytes]), [0, 1, 2, 3].map((l) => [l, l, 4, 64000]));
  assert.equal(offs.map((t) => [t.moves[0].layer, t.afterLayer, t.moves[0].pairs.length / 2]), [0, 1, 2, 3].map((l) => [l, l, 4]));
  // A reload waits for what still writes its source or reads its staging set: layer l's
  // offload of chunk 1, and the set's last reader: in chunk 1 layer l + 2 for layers 0 and 1,
  // this step's layer l - 2 for layers 2 and 3. Only those still in flight are named.
  const prev = bSteps[0].transfers.filter((t) => t.seq === 'b' && t.kind === 'offload');
  reloads.forEach((t, l) => {
    const allowed = new Set([prev[l].id, l >= 2 ? offs[l - 2].id : prev[l + 2].id]);
    for (const d of t.after ?? []) assert.ok(allowed.has(d), `layer ${l} reload waits for ${d}`);
    if (l >= 2) assert.ok(t.after?.includes(offs[l - 2].id), `layer ${l} reload does not wait for the set's last offload`);
  });
  assert.is(s.stats.reloads, 4);
  assert.is(s.kv.device.numUsed + s.kv.host.numUsed, 0);
});

test('layerkv: a promotion that hides behind the step gates only its own layers and decodes at once', async () => {
  // As above with fast h2d (100 MB/s: 0.64 ms a layer): once a has finished, b's four host
  // layers are promoted ahead of their layers' compute in the step it decodes.
  const cost = fakeCost({ h2d: 1e8 });
  const s = createScheduler({ policy: 'layerkv', cost, deviceBlocks: 26, check: true });
  const plans: StepPlan[] = [];
  await simulate({ requests: [req('a', 60, 2), req('b', 60, 3)], scheduler: s, cost, onStep: (p) => plans.push(p) });
  const at = plans.findIndex((p) => p.transfers.some((t) => t.kind === 'promote'));
  const promo = plans[at].transfers;
  assert.equal(promo.map((t) => [t.kind, t.beforeLayer, t.moves[0].to]), [0, 1, 2, 3].map((l) => ['promote', l, 'device']));
  assert.equal(plans[at].compute.map((c) => [c.seq, c.phase]), [['b', 'decode']]);
  assert.is(s.stats.promotions, 4);
});

test('layerkv: decodes stream host layers through staging when the device cannot take them for good', async () => {
  // a (60 + 20 tokens) holds 16 device blocks and will grow by 4; b finds 30 - 1 - 16 - 4 = 9
  // free: it keeps layer 3 (4 blocks) and has 2 staging sets for layers 0-2... of 4 blocks
  // each only while it prefills. Promoting b's 3 host layers needs 12 blocks, not free while
  // a runs; streaming needs 8 staging blocks and 3 x 0.64 ms of h2d behind an ~12 ms step.
  // Each streamed layer: reload its 4 blocks before the layer, offload the block holding the
  // new token after it; layer 2 reuses layer 0's set, so its reload follows layer 0's offload.
  const cost = fakeCost({ h2d: 1e8 });
  const s = createScheduler({ policy: 'layerkv', cost, deviceBlocks: 30, check: true, sloAware: false });
  const plans: StepPlan[] = [];
  const r = await simulate({ requests: [req('a', 60, 20), req('b', 60, 4)], scheduler: s, cost, keepEvents: true, onStep: (p) => plans.push(p) });
  const streamed = plans.filter((p) => p.compute.some((c) => c.seq === 'b' && c.phase === 'decode' && c.staging));
  assert.ok(streamed.length >= 2, `b streamed ${streamed.length} steps`);
  const p = streamed[0];
  const bt = p.transfers.filter((t) => t.seq === 'b');
  assert.equal(bt.map((t) => [t.kind, t.moves[0].layer, t.beforeLayer, t.afterLayer, t.moves[0].pairs.length / 2]), [
    ['reload', 0, 0, undefined, 4], ['offload', 0, undefined, 0, 1],
    ['reload', 1, 1, undefined, 4], ['offload', 1, undefined, 1, 1],
    ['reload', 2, 2, undefined, 4], ['offload', 2, undefined, 2, 1],
  ]);
  assert.equal(bt[4].after, [bt[1].id]);
  assert.equal(p.compute.find((c) => c.seq === 'b')!.staging!.map((x) => x.layer), [0, 1, 2]);
  assert.is(r.metrics.completed, 2);
  assert.ok(s.stats.streamedLoads >= 8);
  assert.is(s.kv.device.numUsed + s.kv.host.numUsed, 0);
});

test('layerkv SLO-aware admission: a prefill whose promotion would wait past its TPOT SLO is not admitted with host layers', async () => {
  // d (65 tokens: 5 blocks a layer, 20 of the 40 admissible) decodes 14 more tokens at
  // ~11 ms without crossing a block. p (100 tokens, 7 blocks a layer) finds 20 free: it
  // would park all 4 layers on the host (its 2 staging sets take the 14 blocks), and their promotion needs 28 device blocks
  // that only d's finish frees, then 200 KB at 1 MB/s = 0.2 s of loads. With a 20 ms TPOT
  // SLO over 2 tokens p may wait (20 - 11) ms plus its own ~0.11 s prefill: never enough
  // while d runs, so p queues and is admitted with every layer on the device after d.
  const run = async (tpotSlo: number | undefined) => {
    const cost = fakeCost({ h2d: 1e6 });
    const s = createScheduler({ policy: 'layerkv', cost, deviceBlocks: 41, check: true });
    const r = await simulate({ requests: [req('d', 65, 15), req('p', 100, 2, { tpotSlo })], scheduler: s, cost, keepEvents: true });
    const at = (id: string, kind: string) => r.events!.filter((e) => e.seq === id && e.kind === kind).map((e) => e.at);
    return { s, r, dDone: at('d', 'finished')[0], pFirst: at('p', 'first-token')[0], pSecond: at('p', 'token')[0] };
  };
  const slo = await run(0.02);
  assert.ok(slo.pFirst >= slo.dDone, `p first token ${slo.pFirst} before d finished ${slo.dDone}`);
  assert.is(slo.s.stats.promotions, 0);
  assert.ok(slo.pSecond - slo.pFirst <= 0.02, `p's TPOT ${slo.pSecond - slo.pFirst}`);
  // Without a TPOT SLO, p is admitted at once with host layers and waits for promotion.
  const free = await run(undefined);
  assert.ok(free.pFirst < free.dDone);
  assert.is(free.s.stats.promotions, 4);
});

test('baseline queues what layerkv admits', async () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 26, check: true });
  const r = await simulate({ requests: [req('a', 64, 2), req('b', 64, 2)], scheduler: s, cost: fakeCost(), keepEvents: true });
  const firsts = r.events!.filter((e) => e.kind === 'first-token');
  assert.ok(firsts[1].at > firsts[0].at + 0.01);
});

test('SLO-aware admission shrinks a new prefill chunk to keep decoding requests within TPOT', async () => {
  const run = async (sloAware: boolean) => {
    const s = createScheduler({ policy: 'layerkv', cost: fakeCost(), deviceBlocks: 1000, sloAware, minPrefillChunk: 16, check: true });
    const plans: StepPlan[] = [];
    await simulate({ requests: [req('d', 16, 20, { tpotSlo: 0.05 }), req('p', 1000, 1, { arrival: 0.03 })], scheduler: s, cost: fakeCost(), onStep: (p) => plans.push(p) });
    return plans.flatMap((p) => p.compute).find((c) => c.seq === 'p')!.tokens;
  };
  // d's first token at 26 ms, its second at 37 ms; p is admitted at 37 ms, when d may take
  // its third token by 26 + 2 * 50 ms: 10 ms + 1 ms per token (p's chunk and d's decode)
  // must stay under 89 ms, so the chunk is at most 78 tokens (to block granularity).
  const chunk = await run(true);
  assert.ok(chunk >= 62 && chunk <= 78, `chunk ${chunk}`);
  assert.is(await run(false), 1000);
});

test('cake load-only: prefix chunks load on the storage channel, then the suffix is computed', async () => {
  const prefix = { chunkTokens: 256, chunkHashes: ['h0', 'h1', 'h2'], storedChunks: 3 };
  const s = createScheduler({ policy: 'load-only', cost: fakeCost(), deviceBlocks: 1000, check: true });
  const plans: StepPlan[] = [];
  const r = await simulate({ requests: [req('c', 1024, 2, { prefix })], scheduler: s, cost: fakeCost(), executorOptions: { storageBandwidth: 1e8, storageLatency: 0 }, keepEvents: true, onStep: (p) => plans.push(p) });
  // Each chunk: a read from the store into 16 host landing blocks a layer, then a copy of
  // those into the request's device blocks of the chunk's positions, after the read.
  const loads = plans.flatMap((p) => p.transfers);
  assert.equal(
    loads.map((t) => [t.kind, t.channel, t.chunk?.index, t.chunk?.hash, t.bytes, layersOf(t).length]),
    [2, 1, 0].flatMap((c) => [['prefix-read', 'storage', c, `h${c}`, 256 * 4 * 1000, 4], ['prefix-load', 'h2d', undefined, undefined, 256 * 4 * 1000, 4]]),
  );
  const table0 = grown(plans[0]).find((u) => u.seq === 'c' && u.layer === 0)!.blocks;
  for (let i = 0; i < loads.length; i += 2) {
    const [read, load] = [loads[i], loads[i + 1]];
    assert.equal(load.after, [read.id]);
    const c = read.chunk!.index;
    assert.equal(Array.from(load.moves[0].pairs), read.chunk!.dest[0].blocks.flatMap((b, j) => [b, table0[c * 16 + j]]));
    assert.ok(read.chunk!.dest.every((d) => d.tier === 'host' && d.blocks.length === 16));
  }
  const computes = plans.flatMap((p) => p.compute).filter((c) => c.phase === 'prefill');
  assert.equal(computes, [{ seq: 'c', phase: 'prefill', tokens: 256, cachedBefore: 768, emitsToken: true }]);
  assert.is(s.stats.loadedTokens, 768);
  assert.is(r.metrics.completed, 1);
});

test('cake: prefix compute gets only the budget left after decodes and ordinary prefills', async () => {
  const prefix = { chunkTokens: 256, chunkHashes: ['h0', 'h1', 'h2'], storedChunks: 3 };
  const s = createScheduler({ policy: 'cake', cost: fakeCost(), deviceBlocks: 1000, maxBatchedTokens: 300, storageBandwidth: 2e6, check: true });
  const plans: StepPlan[] = [];
  await simulate({ requests: [req('o', 200, 2), req('c', 1024, 2, { prefix })], scheduler: s, cost: fakeCost(), executorOptions: { storageBandwidth: 2e6 }, onStep: (p) => plans.push(p) });
  assert.equal(plans[0].compute.map((c) => [c.seq, c.tokens, c.cachedBefore]), [['o', 200, 0], ['c', 100, 0]]);
  assert.ok(plans[0].transfers.some((t) => t.kind === 'prefix-load' && t.seq === 'c'));
  for (const p of plans) assert.ok(p.compute.reduce((a, c) => a + c.tokens, 0) <= 300);
  assert.is(s.kv.device.numUsed, 0);
});

test('compute-only recomputes the stored prefix', async () => {
  const prefix = { chunkTokens: 256, chunkHashes: ['h0', 'h1'], storedChunks: 2 };
  const s = createScheduler({ policy: 'compute-only', cost: fakeCost(), deviceBlocks: 1000 });
  const plans: StepPlan[] = [];
  await simulate({ requests: [req('c', 600, 1, { prefix })], scheduler: s, cost: fakeCost(), onStep: (p) => plans.push(p) });
  assert.equal(plans.flatMap((p) => p.transfers), []);
  assert.is(plans.flatMap((p) => p.compute).reduce((a, c) => a + c.tokens, 0), 600);
});

test('a request longer than the device pool is rejected with a reason, not a hang', async () => {
  const s = createScheduler({ policy: 'baseline', cost: fakeCost(), deviceBlocks: 40 });
  const r = await simulate({ requests: [req('big', 500, 10), req('ok', 20, 2), req('bad', 0, 2)], scheduler: s, cost: fakeCost() });
  assert.equal(r.rejected.map((x) => x.seq), ['big', 'bad']);
  assert.match(r.rejected[0].reason, /promptLen \+ maxNewTokens = 510 exceeds the 144 tokens/);
  assert.match(r.rejected[1].reason, /promptLen must be an integer >= 1/);
  assert.is(r.metrics.completed, 1);
});

test('bad configs throw naming the field', () => {
  assert.throws(() => createScheduler({ policy: 'nope' as never, cost: fakeCost() }), /policy must be one of/);
  assert.throws(() => createScheduler({ policy: 'baseline', cost: fakeCost(), blockSize: 0 }), /blockSize/);
  assert.throws(() => createScheduler({ policy: 'baseline', cost: fakeCost(), watermark: 2 }), /watermark/);
  assert.throws(() => createScheduler({ policy: 'baseline', cost: fakeCost(), preemption: 'evict' as never }), /preemption must be 'recompute' or 'swap', got evict/);
  assert.throws(() => new Scheduler({} as never), /cost must be a CostModel/);
  const s = createScheduler({ policy: 'cake', cost: fakeCost(), deviceBlocks: 1000 });
  s.add(req('p', 100, 1, { prefix: { chunkTokens: 10, chunkHashes: ['x'], storedChunks: 1 } }), 0);
  const ev = s.onResult(s.schedule(0), { start: 0, end: 0, transfersDone: [], sampled: [] });
  assert.match(ev[0].reason!, /chunkTokens must be a positive multiple of blockSize 16/);
});

test('simulate reports a stalled scheduler instead of spinning', async () => {
  const stuck = {
    name: 'stuck',
    add() {},
    schedule: (): StepPlan => ({ step: 0, compute: [], transfers: [], tables: [], staged: [], landing: [], freed: [], preempted: [], ended: [] }),
    abort: () => false,
    onResult: () => [],
    hasWork: () => true,
  };
  await simulate({ requests: [req('a', 10, 1)], scheduler: stuck, cost: fakeCost() }).then(
    () => assert.unreachable('should stall'),
    (e: Error) => assert.match(e.message, /stuck stalled at t = 0.000 s/),
  );
});

test.run();
