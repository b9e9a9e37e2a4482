// The scheduler's public surface (createScheduler, simulate, Request) under generated
// workloads, options and malformed input. Only the public API is used, and the expected
// outcome of a request is worked out here from the documented contract, not by the
// library's own checks:
//   - valid workloads under every policy: each request is rejected for capacity or gets
//     exactly maxNewTokens tokens, in order, after it arrived; the same requests are
//     rejected under every policy (policies change timing, never output); the invariant
//     checker runs after every step; a second run gives the same metrics;
//   - one malformed request among valid ones: simulate throws naming it (what it cannot
//     order or count), or the scheduler rejects it with a reason, as the contract says;
//   - malformed createScheduler and simulate options: a named error, or a scheduler and a
//     run that complete. A run that passes maxSteps counts as a hang.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, deployment, POLICIES, simulate, type PolicyName, type Request, type SimulateResult } from '../../lib/sim/index.js';
import { check, count, namedError, report } from './harness.js';
import { EDGE_NUMBERS, Sentinel, STRINGS } from './values.js';

const dep = deployment('Llama-2-7B', 'L20-48G');
const LAYERS = 32;
const MAX_STEPS = 200_000;

// ---- generators -------------------------------------------------------------------------

const prefix = (promptLen: number) =>
  fc.constantFrom(16, 32, 64, 256).chain((chunkTokens) => {
    const chunks = Math.floor(promptLen / chunkTokens);
    return fc.integer({ min: 0, max: chunks }).map((stored) => ({ chunkTokens, chunkHashes: Array.from({ length: chunks }, (_, i) => `h${i}`), storedChunks: stored }));
  });

const request = (i: number) =>
  fc
    .record({
      promptLen: fc.integer({ min: 1, max: 2500 }),
      maxNewTokens: fc.integer({ min: 1, max: 40 }),
      arrival: fc.double({ min: 0, max: 3, noNaN: true }),
      ttftSlo: fc.option(fc.double({ min: 0.01, max: 20, noNaN: true }), { nil: undefined }),
      tpotSlo: fc.option(fc.double({ min: 0.005, max: 1, noNaN: true }), { nil: undefined }),
      withPrefix: fc.boolean(),
    })
    .chain((r) =>
      (r.withPrefix ? prefix(r.promptLen) : fc.constant(undefined)).map((p) => {
        const req: Request = { id: `r${i}`, arrival: r.arrival, promptLen: r.promptLen, maxNewTokens: r.maxNewTokens };
        if (r.ttftSlo !== undefined) req.ttftSlo = r.ttftSlo;
        if (r.tpotSlo !== undefined) req.tpotSlo = r.tpotSlo;
        if (p) req.prefix = p;
        return req;
      }),
    );

const workload = fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => request(i))));

const config = fc.record({
  deviceBlocks: fc.option(fc.integer({ min: 300, max: 12_000 }), { nil: undefined }),
  hostBlocks: fc.option(fc.integer({ min: 0, max: 50_000 }), { nil: undefined }),
  maxBatchedTokens: fc.integer({ min: 16, max: 4096 }),
  maxRunning: fc.integer({ min: 1, max: 64 }),
  watermark: fc.double({ min: 0, max: 0.2, noNaN: true }),
  minDeviceLayers: fc.integer({ min: 0, max: LAYERS }),
  preemption: fc.constantFrom('recompute' as const, 'swap' as const),
  minPrefillChunk: fc.integer({ min: 1, max: 512 }),
});

/** Anything a caller might pass where an option or a field belongs. */
const junk: fc.Arbitrary<() => unknown> = fc.oneof(
  fc.constantFrom(...EDGE_NUMBERS).map((v) => () => v),
  fc.integer({ min: -3, max: 5000 }).map((v) => () => v),
  fc.double().map((v) => () => v),
  fc.constantFrom(...STRINGS).map((v) => () => v),
  fc.bigInt({ min: -5n, max: 5n }).map((v) => () => v),
  fc.constantFrom<() => unknown>(
    () => undefined,
    () => null,
    () => true,
    () => Symbol('s'),
    () => ({}),
    () => [],
    () => [1, 2],
    () => ['a'],
    () => () => 1,
    () => new Int32Array(3),
    () => dep.cost,
    () => ({ ...dep.cost, model: { numLayers: 0 } }),
    () => Object.defineProperty({}, 'numLayers', {
      get: () => {
        throw new Sentinel('getter');
      },
    }),
  ),
);

function run(requests: readonly Request[], policy: PolicyName, cfg: Record<string, unknown>): Promise<SimulateResult> {
  const scheduler = createScheduler({ policy, cost: dep.cost, check: true, ...cfg } as never);
  count('createScheduler');
  count('simulate');
  count('scheduler.add', requests.length);
  return simulate({ requests, scheduler, deployment: dep, maxSteps: MAX_STEPS }).then((r) => {
    count('scheduler steps', r.steps);
    return r;
  });
}

const CAPACITY = /^promptLen \+ maxNewTokens = \d+ exceeds the \d+ tokens the device pool holds for one sequence$/;

/** What the contract says about every request of a finished run. */
function checkRun(r: SimulateResult, requests: readonly Request[], what: string): void {
  const rejected = new Map(r.rejected.map((x) => [x.seq, x.reason]));
  for (const req of requests) {
    const rec = r.collector.record(req.id)!;
    if (rejected.has(req.id)) {
      assert.ok(rec.rejected, `${what}: ${req.id} rejected but not recorded so`);
      assert.is(rec.tokenTimes.length, 0, `${what}: ${req.id} rejected after emitting tokens`);
      continue;
    }
    assert.is(rec.tokenTimes.length, req.maxNewTokens, `${what}: ${req.id} got ${rec.tokenTimes.length} tokens of ${req.maxNewTokens}`);
    assert.ok(rec.tokenTimes[0] >= req.arrival, `${what}: ${req.id} first token at ${rec.tokenTimes[0]} before arrival ${req.arrival}`);
    for (let i = 1; i < rec.tokenTimes.length; i++) assert.ok(rec.tokenTimes[i] >= rec.tokenTimes[i - 1], `${what}: ${req.id} token ${i} out of order`);
  }
  const m = r.metrics;
  assert.is(m.requests, requests.length);
  assert.is(m.completed, requests.length - rejected.size);
  for (const v of [m.duration, m.goodput, m.throughput.outputTokensPerSec]) assert.ok(Number.isFinite(v) && v >= 0, `${what}: metric ${v}`);
  if (m.completed > 0) assert.ok(Number.isFinite(m.ttft.mean) && m.ttft.mean >= 0, `${what}: ttft mean ${m.ttft.mean}`);
  assert.ok(m.sloAttainment >= 0 && m.sloAttainment <= 1, `${what}: slo attainment ${m.sloAttainment}`);
}

// ---- properties -------------------------------------------------------------------------

test('valid workloads: every policy finishes every request it admits, with the same output', async () => {
  await check(
    'sched: valid workloads under every policy',
    fc.record({ requests: workload, cfg: config }),
    async ({ requests, cfg }) => {
      let rejectedUnder: string | undefined;
      for (const policy of POLICIES) {
        const r = await run(requests, policy, cfg);
        const what = `${policy} ${JSON.stringify(cfg)}`;
        checkRun(r, requests, what);
        for (const x of r.rejected) assert.match(x.reason, CAPACITY, `${what}: ${x.seq} rejected: ${x.reason}`);
        const ids = r.rejected.map((x) => x.seq).sort().join(',');
        rejectedUnder ??= ids;
        assert.is(ids, rejectedUnder, `${what}: rejects different requests from the other policies`);
      }
      const policy = POLICIES[requests.length % POLICIES.length];
      const [a, b] = [await run(requests, policy, cfg), await run(requests, policy, cfg)];
      assert.equal(a.metrics, b.metrics, `${policy}: same input, different metrics`);
    },
    25,
  );
});

// What the documented contract says a request field change makes of a run: 'throw' (simulate
// cannot order or count it), 'reject' (the scheduler rejects it), or 'ok' (it runs, or is
// rejected for capacity).
type Expect = 'throw' | 'reject' | 'ok';
function expected(req: Record<string, unknown>): Expect {
  if (typeof req !== 'object' || req === null) return 'throw';
  if (typeof req.id !== 'string' || req.id === '') return 'throw';
  if (typeof req.arrival !== 'number' || !(req.arrival >= 0 && req.arrival <= 1e9)) return 'throw';
  const posInt = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
  if (!posInt(req.promptLen) || !posInt(req.maxNewTokens)) return 'reject';
  for (const k of ['ttftSlo', 'tpotSlo']) if (req[k] !== undefined && !(typeof req[k] === 'number' && (req[k] as number) > 0)) return 'reject';
  if (req.promptTokens !== undefined && !(req.promptTokens instanceof Int32Array && req.promptTokens.length === req.promptLen)) return 'reject';
  const p = req.prefix as Record<string, unknown> | undefined;
  if (p !== undefined) {
    if (typeof p !== 'object' || p === null) return 'reject';
    const { chunkTokens: c, chunkHashes: h, storedChunks: s } = p;
    if (!(typeof c === 'number' && Number.isSafeInteger(c) && c >= 1 && c % 16 === 0)) return 'reject';
    if (!Array.isArray(h) || h.some((x) => typeof x !== 'string')) return 'reject';
    if (!(typeof s === 'number' && Number.isSafeInteger(s) && s >= 0 && s <= h.length)) return 'reject';
    if (s * c > (req.promptLen as number)) return 'reject';
  }
  return 'ok';
}

const FIELDS = ['id', 'arrival', 'promptLen', 'maxNewTokens', 'ttftSlo', 'tpotSlo', 'promptTokens', 'prefix', 'prefix.chunkTokens', 'prefix.chunkHashes', 'prefix.storedChunks'] as const;
const change = fc.record({
  field: fc.constantFrom(...FIELDS),
  how: fc.oneof(
    junk.map((v) => ({ set: v })),
    fc.integer({ min: -3, max: 3 }).map((by) => ({ by })),
    fc.constantFrom(1e15, -1, 0.5, 2 ** 53, NaN).map((to) => ({ to })),
  ),
});

function applyChange(req: Request, c: { field: (typeof FIELDS)[number]; how: { set: () => unknown } | { by: number } | { to: number } }): Record<string, unknown> {
  const out: Record<string, unknown> = { ...req, prefix: req.prefix ? { ...req.prefix, chunkHashes: [...req.prefix.chunkHashes] } : { chunkTokens: 16, chunkHashes: ['a', 'b'], storedChunks: 1 } };
  const [obj, key] = c.field.startsWith('prefix.') ? [out.prefix as Record<string, unknown>, c.field.slice(7)] : [out, c.field];
  const cur = obj[key];
  obj[key] = 'set' in c.how ? c.how.set() : 'by' in c.how ? (typeof cur === 'number' ? cur + c.how.by : cur) : c.how.to;
  if (!req.prefix && !c.field.startsWith('prefix')) delete out.prefix;
  return out;
}

test('one malformed request among valid ones: a named error or its rejection, as the contract says', async () => {
  await check(
    'sched: malformed requests',
    fc.record({ requests: workload, at: fc.nat(), c: change, policy: fc.constantFrom(...POLICIES), cfg: config }),
    async ({ requests, at, c, policy, cfg }) => {
      const i = at % requests.length;
      const bad = applyChange(requests[i], c);
      const all = requests.map((r, j) => (j === i ? (bad as unknown as Request) : r));
      const want = expected(bad);
      let r: SimulateResult;
      try {
        r = await run(all, policy, cfg);
      } catch (err) {
        assert.is(want, 'throw', `${JSON.stringify(c)} threw ${(err as Error).message} but the contract accepts it (${want})`);
        namedError(err, ['simulate'], `simulate with ${c.field} changed`);
        return;
      }
      assert.is.not(want, 'throw', `${c.field} changed: simulate should have thrown`);
      checkRun(r, all, `${policy} with ${c.field} changed`);
      const reason = r.rejected.find((x) => x.seq === bad.id)?.reason;
      // Capacity is checked first, so a request that is too large is rejected for that.
      if (want === 'reject') assert.ok(reason !== undefined, `${JSON.stringify(c)}: should be rejected, was admitted`);
      else assert.ok(reason === undefined || CAPACITY.test(reason), `${c.field} changed to a valid value, rejected: ${reason}`);
    },
    300,
  );
});

const OPTIONS = ['policy', 'cost', 'blockSize', 'deviceBlocks', 'hostBlocks', 'hostMemBytes', 'maxBatchedTokens', 'maxRunning', 'watermark', 'sloAware', 'minDeviceLayers', 'minPrefillChunk', 'maxLoadsInFlight', 'storageBandwidth', 'recordBlockChanges', 'preemption', 'check', 'name'] as const;
const SMALL: Request[] = [
  { id: 'a', arrival: 0, promptLen: 300, maxNewTokens: 5 },
  { id: 'b', arrival: 0.01, promptLen: 700, maxNewTokens: 3, prefix: { chunkTokens: 256, chunkHashes: ['x', 'y'], storedChunks: 2 } },
];

test('createScheduler with malformed options: a named error, or a scheduler that runs', async () => {
  await check(
    'sched: createScheduler options',
    fc.record({ changes: fc.array(fc.record({ key: fc.constantFrom(...OPTIONS), value: junk }), { minLength: 1, maxLength: 3 }), policy: fc.constantFrom(...POLICIES) }),
    async ({ changes, policy }) => {
      const opts: Record<string, unknown> = { policy, cost: dep.cost };
      for (const ch of changes) opts[ch.key] = ch.value();
      let scheduler;
      count('createScheduler');
      try {
        scheduler = createScheduler(opts as never);
      } catch (err) {
        if (err instanceof Sentinel) return;
        namedError(err, ['createScheduler', 'Scheduler', 'KVCacheManager', 'BlockPool', 'LayerKV'], `createScheduler ${changes.map((c) => c.key).join(', ')}`);
        return;
      }
      count('simulate');
      count('scheduler.add', SMALL.length);
      try {
        const r = await simulate({ requests: SMALL, scheduler, deployment: dep, maxSteps: MAX_STEPS });
        count('scheduler steps', r.steps);
        checkRun(r, SMALL, `options ${changes.map((c) => c.key).join(', ')}`);
      } catch (err) {
        assert.unreachable(`createScheduler accepted ${changes.map((c) => `${c.key} = ${String(opts[c.key])}`).join(', ')} but the run failed: ${(err as Error).message}`);
      }
    },
    600,
  );
});

const SIM_OPTIONS = ['requests', 'scheduler', 'executor', 'deployment', 'cost', 'executorOptions', 'executorOptions.start', 'executorOptions.storageBandwidth', 'executorOptions.storageLatency', 'maxSteps', 'onStep', 'keepEvents'] as const;

test('simulate with malformed options: a named error or a run that completes', async () => {
  await check(
    'sched: simulate options',
    fc.record({ changes: fc.array(fc.record({ key: fc.constantFrom(...SIM_OPTIONS), value: junk }), { minLength: 1, maxLength: 2 }), policy: fc.constantFrom(...POLICIES) }),
    async ({ changes, policy }) => {
      const opts: Record<string, unknown> = { requests: SMALL, scheduler: createScheduler({ policy, cost: dep.cost }), deployment: dep, maxSteps: MAX_STEPS, executorOptions: {} };
      for (const ch of changes) {
        if (ch.key.startsWith('executorOptions.')) {
          const eo = opts.executorOptions;
          if (typeof eo === 'object' && eo !== null && !Object.isFrozen(eo)) (eo as Record<string, unknown>)[ch.key.slice(16)] = ch.value();
        } else opts[ch.key] = ch.value();
      }
      count('createScheduler');
      count('simulate');
      try {
        const r = await simulate(opts as never);
        count('scheduler steps', r.steps);
      } catch (err) {
        if (err instanceof Sentinel) return;
        namedError(err, ['simulate', 'SimExecutor', 'createScheduler'], `simulate ${changes.map((c) => c.key).join(', ')}`);
      }
    },
    300,
  );
});

test('count', () => report());

test.run();
