// Prefix saves and failed prefix loads at the scheduler: which chunks are saved and when,
// that the blocks a save reads stay owned for it (a request that ends before its save is
// issued, a move that lands under a save), and that a chunk whose load fails is computed and
// saved again. Plans run on the ledger executor, which checks every block they touch.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler } from '../../lib/sched/index.js';
import { KVCacheManager } from '../../lib/kv/kv-cache-manager.js';
import { TransferTable } from '../../lib/sched/transfers.js';
import { StepBuilder } from '../../lib/sched/step-builder.js';
import { SeqState } from '../../lib/sched/request-state.js';
import type { StepPlan, Transfer } from '../../lib/contract/plan.js';
import type { Request } from '../../lib/contract/request.js';
import { ListArrivals, runSteps } from '../../lib/loop/step-loop.js';
import { LedgerExecutor } from './ledger.js';
import { fakeCost } from './fake-cost.js';

const hashes = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`);
const req = (id: string, promptLen: number, maxNewTokens: number, prefix?: Request['prefix']): Request => ({ id, arrival: 0, promptLen, maxNewTokens, prefix });

async function run(o: { requests: Request[]; policy?: 'baseline' | 'cake' | 'load-only'; hostBlocks?: number; deviceBlocks?: number; failRead?: (t: Transfer) => boolean; maxBatchedTokens?: number }) {
  const cost = fakeCost({ storage: 1e9 });
  const deviceBlocks = o.deviceBlocks ?? 400;
  const hostBlocks = o.hostBlocks ?? 400;
  const scheduler = createScheduler({ policy: o.policy ?? 'baseline', cost, deviceBlocks, hostBlocks, maxBatchedTokens: o.maxBatchedTokens ?? 512, savePrefixes: true, check: true });
  const ledger = new LedgerExecutor(cost, { deviceBlocks, hostBlocks, blockSize: 16, failRead: o.failRead });
  const plans: StepPlan[] = [];
  const events: { seq: string; kind: string; cachedTokens?: number }[] = [];
  await runSteps({ scheduler, executor: ledger, arrivals: new ListArrivals(o.requests), onStep: (p, _r, ev) => (plans.push(p), events.push(...ev)) });
  ledger.assertEmpty();
  assert.is(scheduler.kv.device.numUsed, 0);
  assert.is(scheduler.kv.host.numUsed, 0);
  const saves = plans.flatMap((p) => p.transfers.filter((t) => t.kind === 'prefix-save').map((t) => ({ step: p.step, seq: t.seq, chunk: t.chunk!.index, hash: t.chunk!.hash, t })));
  return { scheduler, plans, events, saves };
}

test('saves: every full prompt chunk past the stored prefix, once, with every layer; not the partial last chunk or the output', async () => {
  // 100 prompt tokens, 32-token chunks: chunks 0..2 full, 3 partial; 50 output tokens.
  const { saves, scheduler } = await run({ requests: [req('a', 100, 50, { chunkTokens: 32, chunkHashes: hashes(3), storedChunks: 0 })] });
  assert.equal(saves.map((s) => [s.seq, s.chunk, s.hash]), [['a', 0, 'k0'], ['a', 1, 'k1'], ['a', 2, 'k2']]);
  for (const s of saves) {
    assert.is(s.t.channel, 'd2h');
    assert.is(s.t.beforeLayer, undefined);
    assert.equal(s.t.chunk!.dest.map((d) => [d.layer, d.tier, d.blocks.length]), [0, 1, 2, 3].map((l) => [l, 'host', 2]));
    assert.equal(s.t.moves.map((m) => [m.layer, m.from, m.to]), [0, 1, 2, 3].map((l) => [l, 'device', 'host']));
    assert.is(s.t.bytes, 4 * 32 * 1000);
  }
  assert.is(scheduler.stats.prefixSaves, 3);
  assert.is(scheduler.stats.savedBytes, 3 * 4 * 32 * 1000);
});

test('saves: a request that ends at its first token still saves; its blocks wait for the saves', async () => {
  const { saves, plans } = await run({ requests: [req('a', 64, 1, { chunkTokens: 32, chunkHashes: hashes(2), storedChunks: 0 })] });
  assert.equal(saves.map((s) => s.chunk), [0, 1]);
  // Step 0 computes the prompt and ends the request; step 1 issues the saves (and tells the
  // executor the request ended); its table blocks are freed only once the saves are done.
  assert.is(saves[0].step, 1);
  assert.equal(plans[1].ended, ['a']);
  assert.is(plans[1].freed.filter((f) => f.layer >= 0 && f.tier === 'device').length, 0);
  const freedAt = plans.findIndex((p) => p.freed.some((f) => f.tier === 'device'));
  assert.ok(freedAt > 1, `device blocks freed in plan ${freedAt}`);
});

test('saves: with no host room, a running request waits for room; one that ended gives its saves up', async () => {
  // A chunk needs 4 layers x 2 blocks = 8 landing blocks; 7 host blocks never fit one.
  const r = await run({ requests: [req('a', 64, 1, { chunkTokens: 32, chunkHashes: hashes(2), storedChunks: 0 })], hostBlocks: 7 });
  assert.is(r.saves.length, 0);
  assert.is(r.scheduler.stats.prefixSavesSkipped, 2);
  // Two requests sharing 9 host blocks: one landing set at a time, so saves queue, and all
  // of a long-running request's chunks are saved in the end.
  const q = await run({ requests: [req('a', 128, 60, { chunkTokens: 32, chunkHashes: hashes(4), storedChunks: 0 }), req('b', 128, 60, { chunkTokens: 32, chunkHashes: ['b0', 'b1', 'b2', 'b3'], storedChunks: 0 })], hostBlocks: 9 });
  assert.equal(q.saves.map((s) => s.hash).sort(), ['b0', 'b1', 'b2', 'b3', 'k0', 'k1', 'k2', 'k3']);
});

test('saves: stored chunks are not saved again; cake loads them and saves only the rest', async () => {
  const { saves, events } = await run({ policy: 'cake', requests: [req('a', 160, 4, { chunkTokens: 32, chunkHashes: hashes(5), storedChunks: 3 })] });
  assert.equal(saves.map((s) => s.chunk), [3, 4]);
  const first = events.find((e) => e.kind === 'first-token')!;
  assert.ok(first.cachedTokens! > 0 && first.cachedTokens! % 32 === 0, `cachedTokens ${first.cachedTokens}`);
});

test('failed loads: each failed chunk is computed (the ledger checks the KV), counted, and saved again', async () => {
  for (const policy of ['cake', 'load-only'] as const) {
    // Fail the reads of chunks 1 and 3 of a fully stored 6-chunk prompt.
    const failed = new Set([1, 3]);
    const { scheduler, saves, events } = await run({ policy, failRead: (t) => failed.has(t.chunk!.index), requests: [req('a', 192, 3, { chunkTokens: 32, chunkHashes: hashes(6), storedChunks: 6 })] });
    const loaded = scheduler.stats.prefixLoads;
    const failures = scheduler.stats.prefixLoadFailures;
    assert.ok(failures >= 1 && failures <= 2, `${policy}: ${failures} failures`);
    // Only chunks whose read failed are saved, once computed.
    for (const s of saves) assert.ok(failed.has(s.chunk), `${policy}: saved chunk ${s.chunk}`);
    assert.is(saves.length, failures);
    const first = events.find((e) => e.kind === 'first-token')!;
    assert.is(first.cachedTokens, (loaded - failures) * 32, `${policy}: cached tokens`);
    assert.ok(events.some((e) => e.kind === 'finished'));
  }
});

test('failed loads: every read failing still ends every request, each computing its prompt', async () => {
  const reqs = [0, 1, 2].map((i) => req(`r${i}`, 300, 5, { chunkTokens: 32, chunkHashes: hashes(9), storedChunks: 9 }));
  const { scheduler, events } = await run({ policy: 'load-only', failRead: () => true, requests: reqs });
  assert.is(events.filter((e) => e.kind === 'finished').length, 3);
  assert.is(scheduler.stats.prefixLoadFailures, scheduler.stats.prefixLoads);
  for (const e of events.filter((e) => e.kind === 'first-token')) assert.is(e.cachedTokens, 0);
});

test('transfer table: a move that lands under a save leaves the blocks it read to the save', () => {
  const kv = new KVCacheManager({ numLayers: 1, blockSize: 16, deviceBlocks: 8, hostBlocks: 8, watermark: 0, recordTables: true, stagingReserve: 0 });
  const table = new TransferTable(kv);
  const s = new SeqState(req('a', 16, 1), 0);
  const seqKv = kv.create('a', ['host']);
  kv.allocateSlots(seqKv, 16);
  s.hold = { kv: seqKv, inflight: 0, waits: 0, owed: 0, dropped: false };
  const old = seqKv.tables[0].slice();
  const b = new StepBuilder(0, 64, fakeCost({ numLayers: 1 }));
  const landing = kv.allocLanding('a', 0, 1)!;
  const save = table.issue(b, s, { kind: 'prefix-save', channel: 'd2h', bytes: 16000, moves: [{ layer: 0, from: 'host', to: 'host', pairs: new Int32Array([old[0], landing[0]]) }] }, { release: [{ layer: 0, tier: 'host', blocks: landing }], pins: [{ layer: 0, tier: 'host', blocks: old }] });
  const move = kv.moveLayer(seqKv, 0, 'device')!;
  const promote = table.issue(b, s, { kind: 'promote', channel: 'h2d', bytes: 16000, moves: [{ layer: 0, from: 'host', to: 'device', pairs: move.pairs }] }, { release: [{ layer: 0, tier: 'host', blocks: move.source }] });
  assert.is(s.hold.waits, 1, 'the save is not waited for');
  kv.drain();
  table.complete(promote.t.id, 1, undefined);
  assert.is(kv.host.refCount(old[0]), 1, 'the old host block is still owned');
  assert.equal([...table.deferredBlocks()].map((d) => d.block), old);
  assert.equal(kv.drain().freed, []);
  table.complete(save.t.id, 2, undefined);
  assert.is(kv.host.refCount(old[0]), 0);
  assert.equal(kv.drain().freed.map((f) => f.blocks).flat().sort(), [...landing, ...old].sort());
  // Only prefix-store transfers may report a failure.
  const s2 = new SeqState(req('b', 16, 1), 1);
  s2.hold = { kv: kv.create('b', ['device']), inflight: 0, waits: 0, owed: 0, dropped: false };
  const off = table.issue(b, s2, { kind: 'swap-out', channel: 'd2h', bytes: 0, moves: [] });
  assert.throws(() => table.complete(off.t.id, 3, 'disk on fire'), /swap-out of b\) failed: disk on fire; only prefix-store transfers may fail/);
});

test.run();
