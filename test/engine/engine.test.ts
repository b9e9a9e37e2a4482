// The engine: policies change timing, never output. Every policy and both preemption modes,
// with device tiers small enough that offloads, streaming, promotions, swaps and recomputes
// really happen, generate exactly the tokens of the model run alone (Model.generate, one
// sequence, no scheduler). Then aborts at random, bad options, and everything freed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine, type Engine, type EngineOptions } from '../../lib/engine/index.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import { POLICIES } from '../../lib/sched/index.js';
import { mulberry32 } from '../../lib/workload/rng.js';
import { TINY } from '../util/tiny-model.js';

async function rejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

// 3 layers, GQA 4, head dim 64, vocab 509: one KV block of 16 tokens is 2 x 1 x 64 x 16 x 4 B.
const CONFIG = { ...TINY[1].config, torch_dtype: 'float32' };
const SEED = 11;
const BLOCK = 2 * 1 * 64 * 16 * 4;
const LAYERS = 3;

let ref: Model;
const refCache = new Map<string, number[]>();

async function reference(prompt: number[], maxTokens: number): Promise<number[]> {
  const key = `${prompt.join(',')}|${maxTokens}`;
  const hit = refCache.get(key);
  if (hit) return hit;
  ref ??= await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: SEED }, { dtype: 'fp32' });
  const r = await ref.generate(prompt, { maxTokens, kvDtype: 'fp32', stopTokenIds: [] });
  refCache.set(key, r.tokenIds);
  return r.tokenIds;
}

function workload(seed: number, n: number): { prompt: number[]; maxTokens: number }[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const len = 5 + Math.floor(rng() * 70);
    return { prompt: Array.from({ length: len }, () => Math.floor(rng() * 509)), maxTokens: 3 + Math.floor(rng() * 40) };
  });
}

async function engineFor(o: Partial<EngineOptions>): Promise<Engine> {
  return createEngine({ model: { config: CONFIG, dummySeed: SEED }, backend: 'cpu', dtype: 'fp32', deviceKvBytes: 40 * BLOCK * LAYERS, hostKvBytes: 400 * BLOCK, maxBatchedTokens: 48, ...o });
}

for (const policy of ['baseline', 'layerkv'] as const) {
  for (const preemption of ['recompute', 'swap'] as const) {
    test(`engine ${policy}, preemption ${preemption}: concurrent requests under memory pressure give the reference tokens`, async () => {
      const engine = await engineFor({ policy, preemption });
      const reqs = workload(policy === 'baseline' ? 1 : 2, 12);
      const gens = reqs.map((r) => engine.generate(r.prompt, { maxTokens: r.maxTokens, ignoreEos: true }));
      const results = await Promise.all(gens.map((g) => g.result));
      for (const [i, r] of results.entries()) {
        assert.equal(r.tokenIds, await reference(reqs[i].prompt, reqs[i].maxTokens), `request ${i}`);
        assert.is(r.stats.finishReason, 'length');
        assert.is(r.stats.generatedTokens, reqs[i].maxTokens);
      }
      const st = engine.stats();
      assert.is(st.kv.device.usedBlocks, 0);
      assert.is(st.kv.host.usedBlocks, 0);
      // The pressure is real: the baseline preempts, LayerKV offloads and loads layers.
      if (policy === 'baseline') assert.ok(st.totals.preemptions > 0, 'no preemption happened');
      else assert.ok(st.totals.offloadedBytes > 0 && st.totals.loadedBytes > 0, 'no layer went to the host and back');
      await engine.close();
    });
  }
}

test('engine: step reports carry the step\'s cost items and its copy bytes (what fitEngineSteps refits on)', async () => {
  const reports: import('../../lib/engine/types.js').StepReport[] = [];
  const engine = await engineFor({ policy: 'layerkv', onStep: (r) => reports.push(r) });
  const reqs = workload(2, 12);
  await Promise.all(reqs.map((r) => engine.generate(r.prompt, { maxTokens: r.maxTokens, ignoreEos: true }).result));
  await engine.close();
  assert.ok(reports.length > 0);
  for (const r of reports) {
    assert.is(r.items.reduce((a, x) => a + x.tokens, 0), r.prefillTokens + r.decodeTokens, `step ${r.step}`);
    assert.is(r.items.filter((x) => x.phase === 'decode').length, r.decodeTokens);
    if (r.transfers === 0) assert.equal(r.copyBytes, { h2d: 0, d2h: 0 });
    assert.ok(r.idleSeconds >= 0 && Number.isFinite(r.idleSeconds), `step ${r.step} idleSeconds ${r.idleSeconds}`);
  }
  // Idle time is the time since the previous step with compute ended: back to back, the
  // host's time between two steps; never more than the time since the last report.
  for (let i = 1; i < reports.length; i++) {
    const sinceLast = reports[i].startedAt - (reports[i - 1].startedAt + reports[i - 1].seconds);
    assert.ok(reports[i].idleSeconds <= sinceLast + 1e-9, `step ${reports[i].step}: idle ${reports[i].idleSeconds} > ${sinceLast}`);
  }
  const d2h = reports.reduce((a, r) => a + r.copyBytes.d2h, 0);
  const h2d = reports.reduce((a, r) => a + r.copyBytes.h2d, 0);
  assert.ok(d2h > 0 && h2d > 0, `LayerKV under pressure copies both ways (d2h ${d2h}, h2d ${h2d})`);
});

test('engine: every policy name is accepted and gives the reference tokens on a light load', async () => {
  const reqs = workload(3, 3);
  for (const policy of POLICIES) {
    const engine = await engineFor({ policy, deviceKvBytes: 400 * BLOCK * LAYERS });
    const out = await Promise.all(reqs.map((r) => engine.generate(r.prompt, { maxTokens: r.maxTokens, ignoreEos: true }).result));
    for (const [i, r] of out.entries()) assert.equal(r.tokenIds, await reference(reqs[i].prompt, reqs[i].maxTokens), `${policy} request ${i}`);
    await engine.close();
  }
});

test('engine: the token stream yields each token once, in order, ending with the result', async () => {
  const engine = await engineFor({});
  const { prompt, maxTokens } = workload(4, 1)[0];
  const g = engine.generate(prompt, { maxTokens, ignoreEos: true });
  const seen: number[] = [];
  for await (const c of g) if (c.tokenId >= 0) seen.push(c.tokenId);
  const r = await g.result;
  assert.equal(seen, r.tokenIds);
  assert.ok(r.stats.ttft > 0 && r.stats.e2e >= r.stats.ttft);
  assert.is(r.stats.promptTokens, prompt.length);
  await engine.close();
});

test('engine: random aborts at any stage free everything; the others still match the reference', async () => {
  const engine = await engineFor({ policy: 'layerkv', preemption: 'swap' });
  const reqs = workload(5, 16);
  const rng = mulberry32(99);
  const ctrls = reqs.map(() => new AbortController());
  const gens = reqs.map((r, i) => engine.generate(r.prompt, { maxTokens: r.maxTokens, ignoreEos: true, signal: ctrls[i].signal }));
  const aborted = new Set<number>();
  for (const [i, c] of ctrls.entries()) {
    if (rng() < 0.4) {
      aborted.add(i);
      setTimeout(() => c.abort(), Math.floor(rng() * 40));
    }
  }
  const results = await Promise.all(gens.map((g) => g.result));
  for (const [i, r] of results.entries()) {
    const want = await reference(reqs[i].prompt, reqs[i].maxTokens);
    if (r.stats.finishReason === 'abort') {
      assert.ok(aborted.has(i));
      // What it emitted before the abort is a prefix of the reference.
      assert.equal(r.tokenIds, want.slice(0, r.tokenIds.length));
    } else {
      assert.equal(r.tokenIds, want, `request ${i}`);
    }
  }
  assert.ok(results.some((r) => r.stats.finishReason === 'abort'), 'no abort took effect');
  const st = engine.stats();
  assert.is(st.kv.device.usedBlocks + st.kv.host.usedBlocks, 0);
  await engine.close();
});

test('engine: breaking out of the stream cancels the request', async () => {
  const engine = await engineFor({});
  const g = engine.generate(workload(6, 1)[0].prompt, { maxTokens: 200, ignoreEos: true });
  let n = 0;
  for await (const _ of g) if (++n === 3) break;
  const r = await g.result;
  assert.is(r.stats.finishReason, 'abort');
  assert.ok(r.tokenIds.length < 200);
  await engine.close();
});

test('engine: close() aborts what is in flight and releases every pool', async () => {
  const engine = await engineFor({ policy: 'layerkv' });
  const gens = workload(7, 6).map((r) => engine.generate(r.prompt, { maxTokens: 200, ignoreEos: true }));
  await new Promise((r) => setTimeout(r, 20));
  await engine.close();
  for (const g of gens) assert.is((await g.result).stats.finishReason === 'abort' || (await g.result).stats.finishReason === 'length', true);
  assert.equal((engine as unknown as { liveBytes(): unknown }).liveBytes(), { device: 0, host: 0 });
  assert.throws(() => engine.generate([1, 2, 3]), /generate: the engine is closed/);
});

test('engine: bad options and requests are clear errors naming the option and the limit', async () => {
  const model = { config: CONFIG, dummySeed: SEED };
  await rejects(() => createEngine({ model, backend: 'gpu' as never, deviceKvBytes: 1e6 }), /backend must be 'cpu' or 'cuda', got "gpu"/);
  await rejects(() => createEngine({ model, backend: 'cpu', deviceKvBytes: 1e6, blockSize: 24 }), /blockSize must be one of 8, 16, 32, 64, 128, 256, got 24/);
  await rejects(() => createEngine({ model, backend: 'cpu', deviceKvBytes: 2 * BLOCK, dtype: 'fp32' }), /deviceKvBytes = 16384 holds 2 blocks of 8192 bytes; the model needs at least one block per layer \(3 blocks, 24576 bytes\)/);
  await rejects(() => createEngine({ model, backend: 'cpu', deviceKvBytes: NaN }), /deviceKvBytes must be a finite number of bytes >= 0, got NaN/);
  await rejects(() => createEngine({ model, backend: 'cpu', deviceKvBytes: 1e6, policy: 'fast' as never }), /policy must be one of baseline, layerkv/);
  const engine = await engineFor({});
  assert.throws(() => engine.generate([]), /generate: the prompt is empty/);
  assert.throws(() => engine.generate([1, 9999]), /generate: prompt\[1\] = 9999 is not a token id in \[0, 509\)/);
  assert.throws(() => engine.generate([1, 2], { maxTokens: 0 }), /generate: maxTokens must be an integer >= 1, got 0/);
  assert.throws(() => engine.generate([1, 2], { temperature: -1 }), /generate.temperature = -1 must be a finite number >= 0/);
  assert.throws(() => engine.generate([1, 2], { stop: ['x'] }), /stop\[0\] is a string, and this model has no tokenizer/);
  assert.throws(() => engine.generate('hello'), /this model has no tokenizer; pass token ids/);
  // Longer than the device tier can ever hold for one sequence: rejected, not hung.
  await rejects(() => engine.generate(Array.from({ length: 600 }, () => 1), { maxTokens: 100 }).result, /request rejected: promptLen \+ maxTokens|request rejected: promptLen \+ maxNewTokens = 700 exceeds the/);
  await engine.close();
});

test.after(() => ref?.release());

test.run();
