// fitEngineSteps: the refit of a cost model to an engine's own steps recovers the costs that
// produced them, counts back-to-back host gaps as step time and idle waits as nothing, and
// takes the shared-core copies out before fitting, and gives a step after an idle stretch
// its wake cost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fitEngineSteps } from '../../lib/engine/refit.js';
import { LinearCost } from '../../lib/cost/linear.js';
import type { StepReport } from '../../lib/engine/types.js';
import type { CostItem } from '../../lib/cost/cost-model.js';
import { mulberry32 } from '../../lib/workload/rng.js';

const channels = { h2d: { bandwidth: 1e9, latency: 0 }, d2h: { bandwidth: 5e8, latency: 0 }, storage: { bandwidth: 1e9, latency: 1e-4 } };
const base = (copiesShareCompute: boolean) =>
  new LinearCost({ numLayers: 4, kvBytesPerTokenLayer: 512, deviceKvBytes: 1e9, coef: { t0: 1e-3, perItem: 1e-5, perToken: 1e-5, perPair: 1e-9, perKvToken: 1e-8 }, channels, copiesShareCompute });
const truth = { t0: 2.5e-3, perItem: 2e-4, perToken: 1.1e-4, perPair: 1.2e-7, perKvToken: 4e-7 };

/** Steps of a random continuous-batching run whose times come from `truth`, with a host gap
 *  of `gap` after each and, every 7th step, a long idle wait that must not count. */
function run(o: { gap: number; copies: boolean; n?: number; idle?: number; wake?: number; noise?: boolean; reportIdle?: boolean }): StepReport[] {
  const rng = mulberry32(5);
  const cost = new LinearCost({ numLayers: 4, kvBytesPerTokenLayer: 512, deviceKvBytes: 1e9, coef: truth, channels });
  const out: StepReport[] = [];
  let at = 0;
  for (let i = 0; i < (o.n ?? 300); i++) {
    const items: CostItem[] = [];
    const decodes = Math.floor(rng() * 12);
    for (let d = 0; d < decodes; d++) items.push({ phase: 'decode', tokens: 1, cachedBefore: 50 + Math.floor(rng() * 400) });
    if (i % 3 === 0 || decodes === 0) items.push({ phase: 'prefill', tokens: 16 + Math.floor(rng() * 240), cachedBefore: Math.floor(rng() * 256) });
    const copyBytes = { h2d: o.copies && i % 2 ? 4e6 : 0, d2h: o.copies && i % 5 === 0 ? 1e6 : 0 };
    // With reportIdle the engine says how long it sat idle, and its first step follows a
    // second of nothing (its creation); otherwise the fit infers it from the step before.
    const afterIdle = i % 7 === 0 && (i > 0 || o.reportIdle === true);
    // Noise of mean 1: nine steps in ten 5% fast, one in ten 45% slow.
    const noise = o.noise ? (rng() < 0.1 ? 1.45 : 0.95) : 1;
    const seconds = noise * cost.stepTime(items) + (o.copies ? copyBytes.h2d / 1e9 + copyBytes.d2h / 5e8 : 0) + (afterIdle ? (o.wake ?? 0) : 0);
    const prefill = items.filter((x) => x.phase === 'prefill').reduce((a, x) => a + x.tokens, 0);
    out.push({ step: i, startedAt: at, seconds, predictedSeconds: 0, issueSeconds: 0, prefillTokens: prefill, decodeTokens: decodes, transfers: 0, items, copyBytes, idleSeconds: o.reportIdle ? (i === 0 ? 1 : i % 7 === 0 ? (o.idle ?? 0.05) : o.gap) : NaN, stats: undefined as unknown as StepReport['stats'] });
    at += seconds + (i % 7 === 6 ? (o.idle ?? 0.05) : o.gap);
  }
  return out;
}

const near = (a: number, b: number, rel: number, what: string) => assert.ok(Math.abs(a - b) <= rel * Math.abs(b) + 1e-12, `${what}: ${a} vs ${b}`);

test('refit: recovers the coefficients that produced the steps, whatever the model-alone fit said', () => {
  const fit = fitEngineSteps(base(false), run({ gap: 0, copies: false }));
  for (const k of Object.keys(truth) as (keyof typeof truth)[]) near(fit.coef[k], truth[k], 1e-6, k);
  assert.is(fit.steps, 300);
  assert.is(fit.meanGapSeconds, 0);
  for (const k of fit.byKind) near(k.fitted, k.measured, 1e-6, k.kind);
  // Channels and the copy flag are the calibration's.
  assert.equal(fit.cost.channel('d2h'), channels.d2h);
  assert.is(fit.cost.copiesShareCompute, false);
});

test('refit: a back-to-back host gap is step time (t0 grows by it); an idle wait is not', () => {
  const fit = fitEngineSteps(base(false), run({ gap: 3e-4, copies: false }));
  near(fit.meanGapSeconds, 3e-4, 1e-9, 'mean gap');
  // A step followed by an idle wait shows no gap (its host time hides in the wait), so on
  // average a fitted step grows by a little under the full gap.
  const steps = run({ gap: 3e-4, copies: false });
  const plain = fitEngineSteps(base(false), run({ gap: 0, copies: false }));
  const grown = steps.reduce((a, r) => a + fit.cost.stepTime(r.items) - plain.cost.stepTime(r.items), 0) / steps.length;
  assert.ok(grown > 0.8 * 3e-4 && grown < 3e-4, `a step grew by ${grown} s`);
  // Past maxGapSeconds every gap is an idle wait: nothing is added.
  const none = fitEngineSteps(base(false), run({ gap: 3e-4, copies: false }), { maxGapSeconds: 1e-4 });
  near(none.coef.t0, truth.t0, 1e-6, 't0 without gaps');
});

test('refit: copies on the compute cores are taken out at their measured bandwidth before the fit', () => {
  const steps = run({ gap: 0, copies: true });
  const fit = fitEngineSteps(base(true), steps);
  for (const k of Object.keys(truth) as (keyof typeof truth)[]) near(fit.coef[k], truth[k], 1e-6, k);
  assert.is(fit.cost.copiesShareCompute, true);
  // Without the flag the copies' time lands in the step costs instead.
  const blind = fitEngineSteps(base(false), steps);
  assert.ok(blind.coef.t0 + blind.coef.perItem * 5 > truth.t0 + truth.perItem * 5, 'copy time went somewhere');
});

test('refit: a step after an idle stretch gets a wake cost of its own; a short idle is no wake', () => {
  const fit = fitEngineSteps(base(false), run({ gap: 0, copies: false, idle: 0.2, wake: 0.012 }));
  near(fit.wake.seconds, 0.012, 1e-6, 'wake');
  assert.is(fit.wake.steps, 42);
  assert.is(fit.wake.afterIdleSeconds, 0.1);
  for (const k of Object.keys(truth) as (keyof typeof truth)[]) near(fit.coef[k], truth[k], 1e-6, k);
  assert.equal(fit.cost.wake, { afterIdleSeconds: 0.1, seconds: fit.wake.seconds });
  for (const k of fit.byKind) near(k.fitted, k.measured, 1e-6, k.kind);
  // Without cold steps the wake cost is nothing.
  near(fitEngineSteps(base(false), run({ gap: 0, copies: false, idle: 0.2 })).wake.seconds, 0, 1e-6, 'no wake');
  // Idle stretches shorter than wakeAfterIdleSeconds are not wakes: their steps' extra time
  // is spread over the coefficients instead.
  const short = fitEngineSteps(base(false), run({ gap: 0, copies: false, idle: 0.02, wake: 0.012 }));
  assert.is(short.wake.steps, 0);
  assert.is(short.wake.seconds, 0);
});

test("refit: the engine's idleSeconds marks the wakes, the first step of a run included", () => {
  const fit = fitEngineSteps(base(false), [run({ gap: 2e-4, copies: false, idle: 0.2, wake: 0.012, reportIdle: true })]);
  assert.is(fit.wake.steps, 43);
  near(fit.wake.seconds, 0.012, 0.01, 'wake');
});

test('refit: several engine runs, each on its own clock, are read run by run', () => {
  const a = run({ gap: 3e-4, copies: false, idle: 0.2, wake: 0.012 });
  const two = fitEngineSteps(base(false), [a, a]);
  // (Within 1%: a step before an idle stretch has no host gap to add, which the fit spreads.)
  near(two.wake.seconds, 0.012, 0.01, 'wake');
  assert.is(two.wake.steps, 84);
  assert.is(two.steps, 600);
  near(two.meanGapSeconds, 3e-4, 1e-9, 'mean gap');
  // Flattened, the two clocks interleave: gaps and idle stretches between the runs' steps
  // are nonsense, and the fit says so.
  const flat = fitEngineSteps(base(false), [...a, ...a]);
  assert.ok(Math.abs(flat.wake.seconds - 0.012) > 1e-4 || flat.wake.steps !== 84, 'a flattened pair of runs reads as one');
});

test('refit: keepShape fits one factor on the base model (and the wake), whatever the steps', () => {
  // Steps from the base model's own shape, 1.3x slower, with cold steps after idle.
  const slow = new LinearCost({ numLayers: 4, kvBytesPerTokenLayer: 512, deviceKvBytes: 1e9, coef: { t0: 1.3e-3, perItem: 1.3e-5, perToken: 1.3e-5, perPair: 1.3e-9, perKvToken: 1.3e-8 }, channels });
  const steps = run({ gap: 0, copies: false, idle: 0.2, wake: 0.004 }).map((r, i) => ({ ...r, seconds: slow.stepTime(r.items) + (i > 0 && i % 7 === 0 ? 0.004 : 0) }));
  let at = 0;
  for (const [i, r] of steps.entries()) {
    r.startedAt = at;
    at += r.seconds + (i % 7 === 6 ? 0.2 : 0);
  }
  const fit = fitEngineSteps(base(false), steps, { keepShape: true });
  for (const k of Object.keys(truth) as (keyof typeof truth)[]) near(fit.coef[k], 1.3 * base(false).coef[k], 1e-6, k);
  near(fit.wake.seconds, 0.004, 1e-6, 'wake');
});

test('refit: on noisy steps the fit sits on their mean, not under it', () => {
  // Weighting each step by its own measured time would follow the fast ones, about 2.7%
  // under the mean for this noise.
  const fit = fitEngineSteps(base(false), run({ gap: 0, copies: false, noise: true, n: 2000 }));
  for (const k of fit.byKind) near(k.fitted, k.measured, 0.01, k.kind);
});

test('refit: too few steps and a bad maxGapSeconds are errors naming the argument', () => {
  assert.throws(() => fitEngineSteps(base(false), run({ gap: 0, copies: false, n: 7 })), /fitEngineSteps: needs at least 8 steps with compute, got 7/);
  assert.throws(() => fitEngineSteps(base(false), run({ gap: 0, copies: false }), { maxGapSeconds: -1 }), /fitEngineSteps: maxGapSeconds must be a finite number >= 0, got -1/);
  assert.throws(() => fitEngineSteps(base(false), run({ gap: 0, copies: false }), { wakeAfterIdleSeconds: 1e-4 }), /fitEngineSteps: wakeAfterIdleSeconds must be a finite number > maxGapSeconds \(0.001\), got 0.0001/);
});

test.run();
