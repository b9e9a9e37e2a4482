// Bad input to the scheduler's and the simulator's public entry points (createScheduler,
// scheduler.add, simulate): a clear error naming the argument, or a rejected request with
// its reason; never a TypeError from inside, a silent use of the value, or a hang.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, deployment, simulate, synthetic, type Request } from '../../lib/sim/index.js';
import { fakeCost } from './fake-cost.js';

const dep = deployment('Llama-2-7B', 'L20-48G');
const reqs = synthetic({ n: 3, rate: 4, promptLen: [100, 200], outputLen: [4, 8], seed: 1 });

function throwsLike(fn: () => unknown, type: new (...a: never[]) => Error, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a ${type.name} matching ${re}`);
}

async function rejectsLike(p: Promise<unknown>, type: new (...a: never[]) => Error, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a ${type.name} matching ${re}`);
}

test('createScheduler: the cost model and options it would misuse', () => {
  throwsLike(() => createScheduler({ policy: 'baseline', cost: {} as never }), TypeError, /^createScheduler: cost\.stepTime must be a function$/);
  throwsLike(() => createScheduler({ policy: 'baseline', cost: null as never }), TypeError, /^createScheduler: cost must be a CostModel .*, got null$/);
  throwsLike(() => createScheduler({ policy: 'baseline', cost: { ...fakeCost(), numLayers: 0 } }), RangeError, /^createScheduler: cost\.numLayers must be an integer >= 1, got 0$/);
  const nanH2d = fakeCost();
  throwsLike(() => createScheduler({ policy: 'baseline', cost: { ...nanH2d, channel: (c) => (c === 'h2d' ? { bandwidth: NaN, latency: 0 } : nanH2d.channel(c)) } }), RangeError, /^createScheduler: cost\.channel\('h2d'\)\.bandwidth must be a finite number of bytes\/s >= 1, got NaN$/);
  for (const m of [-1, NaN, 33, 1.5])
    throwsLike(() => createScheduler({ policy: 'layerkv', cost: dep.cost, minDeviceLayers: m as number }), RangeError, new RegExp(`^createScheduler: minDeviceLayers must be an integer in \\[0, 32\\] \\(the model's layers\\), got ${String(m)}$`));
  throwsLike(() => createScheduler({ policy: 'layerkv', cost: dep.cost, minDeviceLayers: 2n as never }), TypeError, /^createScheduler: minDeviceLayers must be a number, got 2n$/);
  createScheduler({ policy: 'layerkv', cost: dep.cost, minDeviceLayers: 32 });
  throwsLike(() => createScheduler({ policy: 'baseline', cost: dep.cost, hostMemBytes: -1 }), RangeError, /^createScheduler: hostMemBytes must be a finite number >= 0, got -1$/);
  throwsLike(() => createScheduler({ policy: 'baseline', cost: dep.cost, maxBatchedTokens: 2 ** 53 + 2 }), RangeError, /^createScheduler: maxBatchedTokens = 9007199254740994 exceeds 2147483647$/);
  throwsLike(() => createScheduler({ policy: 'cake', cost: dep.cost, storageBandwidth: 5e-324 }), RangeError, /^createScheduler: storageBandwidth must be a finite number of bytes\/s >= 1 or a function returning one, got 5e-324$/);
  throwsLike(() => createScheduler({ policy: Symbol('p') as never, cost: dep.cost }), RangeError, /^createScheduler: policy must be one of .*, got a symbol$/);
});

test('scheduler.add: a non-object throws; a malformed request is rejected with its reason', () => {
  const s = createScheduler({ policy: 'cake', cost: dep.cost });
  throwsLike(() => s.add(null as never, 0), TypeError, /^add: request must be an object, got null$/);
  const base: Request = { id: 'a', arrival: 0, promptLen: 64, maxNewTokens: 4 };
  const cases: [Partial<Record<keyof Request, unknown>>, string][] = [
    [{ id: 5 }, 'request.id must be a non-empty string, got 5'],
    [{ ttftSlo: NaN }, 'ttftSlo must be a positive number of seconds (or left out), got NaN'],
    [{ tpotSlo: -0.1 }, 'tpotSlo must be a positive number of seconds (or left out), got -0.1'],
    [{ arrival: 1e15 }, 'arrival must be a time in [0, 1e9] s, got 1000000000000000'],
    [{ promptLen: 2n }, 'promptLen must be an integer >= 1, got 2n'],
    [{ prefix: { chunkTokens: 32, chunkHashes: null, storedChunks: 1 } }, 'prefix.chunkHashes must be an array of strings, got null'],
    [{ prefix: { chunkTokens: 32, chunkHashes: ['x', 7], storedChunks: 1 } }, 'prefix.chunkHashes[1] must be a string, got 7'],
    [{ prefix: null }, 'prefix must be an object, got null'],
    [{ promptTokens: new Int32Array(3) }, 'promptTokens has 3 ids, promptLen is 64'],
    [{ promptTokens: [1, 2] }, 'promptTokens must be an Int32Array of promptLen = 64 token ids, got an array'],
  ];
  cases.forEach(([patch], i) => s.add({ ...base, id: `r${i}`, ...patch } as Request, 0));
  const ev = s.onResult(s.schedule(0), { start: 0, end: 0, transfersDone: [], sampled: [] });
  const reasons = ev.filter((e) => e.kind === 'rejected').map((e) => e.reason);
  assert.equal(reasons, cases.map(([, r]) => r));
});

test('simulate: clocks and arrivals are validated; nothing hangs', async () => {
  const scheduler = () => createScheduler({ policy: 'layerkv', cost: dep.cost });
  for (const start of [NaN, Infinity, -1, 1e15])
    await rejectsLike(simulate({ requests: reqs, scheduler: scheduler(), deployment: dep, executorOptions: { start } }), RangeError, new RegExp(`^SimExecutor: start must be a time in \\[0, 1e9\\] s, got ${String(start).replace('+', '\\+')}$`));
  for (const arrival of [NaN, 1e15, -1, Infinity])
    await rejectsLike(simulate({ requests: [{ ...reqs[0], arrival }], scheduler: scheduler(), deployment: dep }), RangeError, new RegExp(`^simulate: requests\\[0\\]\\.arrival must be a time in \\[0, 1e9\\] s, got ${String(arrival)}$`));
  await rejectsLike(simulate({ requests: [...reqs, null as never], scheduler: scheduler(), deployment: dep }), TypeError, /^simulate: requests\[3\] must be a Request object, got null$/);
  await rejectsLike(simulate({ requests: [{ ...reqs[0], id: 5 as never }], scheduler: scheduler(), deployment: dep }), TypeError, /^simulate: requests\[0\]\.id must be a non-empty string, got 5$/);
  await rejectsLike(simulate({ requests: [reqs[0], { ...reqs[1], id: reqs[0].id }], scheduler: scheduler(), deployment: dep }), RangeError, /^simulate: requests\[1\]\.id "r0" repeats an earlier request's id$/);
  await rejectsLike(simulate({ requests: reqs, scheduler: scheduler(), deployment: dep, executorOptions: null as never }), TypeError, /^simulate: executorOptions must be an object, got null$/);
  const nanCost = { ...fakeCost(), stepTime: () => NaN };
  await rejectsLike(simulate({ requests: reqs, scheduler: createScheduler({ policy: 'baseline', cost: fakeCost() }), cost: nanCost }), RangeError, /^SimExecutor: cost\.stepTime must return a finite number of seconds >= 0, got NaN for step 0$/);
  // Late but valid arrivals keep their TTFT: the clock still resolves step times there.
  const late = await simulate({ requests: reqs.map((r) => ({ ...r, arrival: r.arrival + 9e8 })), scheduler: scheduler(), deployment: dep });
  const early = await simulate({ requests: reqs, scheduler: scheduler(), deployment: dep });
  assert.ok(Math.abs(late.metrics.ttft.mean - early.metrics.ttft.mean) < 1e-5, `${late.metrics.ttft.mean} vs ${early.metrics.ttft.mean}`);
  // A request rejected for its SLO shows in the result, it does not vanish.
  const r = await simulate({ requests: [{ ...reqs[0], ttftSlo: NaN }, reqs[1]], scheduler: scheduler(), deployment: dep });
  assert.equal(r.rejected, [{ seq: reqs[0].id, reason: 'ttftSlo must be a positive number of seconds (or left out), got NaN' }]);
});

test.run();
