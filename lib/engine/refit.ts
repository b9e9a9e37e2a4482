// Refits a calibrated cost model to the steps an engine really ran (its onStep reports), so
// the simulator predicts the engine from the engine's own steps and not only from the model
// run alone (calibrate.ts). What the engine adds over the model alone, and what the fit
// therefore absorbs:
//   - the host time between two steps run back to back: the scheduler's schedule(), the
//     dispatch of the step's tokens to their streams, timers of new arrivals. The simulator
//     starts its next step the instant the last one ends, so this time belongs in the step's
//     cost (it lands in t0 and perItem);
//   - scattered block tables, sampling in the step, caches shared with the rest of the
//     process;
//   - the first step after the engine sat idle (no request in flight for wakeAfterIdle
//     seconds or more) runs cold: on a shared VM a prefill arriving at an idle engine took
//     30-60% longer than the same prefill behind other steps. The fit gives such steps a
//     constant of their own, the cost model's wake cost, which the simulator charges the
//     same way.
// Copies between the tiers are not fitted here: where they share the compute cores
// (copiesShareCompute) the simulator adds their time from the measured copy bandwidth, so
// that time is taken out of each step before the fit. Channels are kept as calibrated.
import { LinearCost, type LinearCoefficients } from '../cost/linear.js';
import { nnls } from './calibrate.js';
import type { StepReport } from './types.js';

export interface StepFit {
  cost: LinearCost;
  coef: LinearCoefficients;
  /** Steps the fit used (those with compute). */
  steps: number;
  /** Extra seconds of a step after an idle stretch (cost.wake), and how many steps had it. */
  wake: { afterIdleSeconds: number; seconds: number; steps: number };
  /** Mean host seconds between back-to-back steps, folded into the fit. */
  meanGapSeconds: number;
  /** Per kind of step: how many, and the mean measured and fitted seconds (gap included). */
  byKind: { kind: 'decode' | 'prefill' | 'mixed'; steps: number; measured: number; fitted: number }[];
}

export interface StepFitOptions {
  /** A gap up to this many seconds counts as host time between back-to-back steps; a
   *  longer one is the engine idling for an arrival (1 ms). */
  maxGapSeconds?: number;
  /** A step that starts at least this long after the previous step ended follows an idle
   *  engine and is fitted with the wake cost (0.1 s). On this machine a 256-token prefill
   *  took 35 ms after 20 ms idle, 41 ms after 60 ms, and 52-55 ms after 150, 300 or 600 ms:
   *  the cost ramps up over the first ~100 ms of idle and then stays, so one constant fits
   *  it best from there. */
  wakeAfterIdleSeconds?: number;
  /** Keep the base model's shape and fit one factor on its step times (and the wake): for
   *  steps too alike to tell the coefficients apart, such as one prompt's chunks, where a
   *  free fit trades the per-step cost against the attention's and lands anywhere. */
  keepShape?: boolean;
}

/**
 * `reports`: one engine's onStep reports, or several engines' (one array per engine run).
 * Each run has its own clock, so gaps and idle stretches are read within a run only.
 */
export function fitEngineSteps(base: LinearCost, reports: readonly StepReport[] | readonly (readonly StepReport[])[], o: StepFitOptions = {}): StepFit {
  const maxGap = o.maxGapSeconds ?? 1e-3;
  if (!(maxGap >= 0 && Number.isFinite(maxGap))) throw new RangeError(`fitEngineSteps: maxGapSeconds must be a finite number >= 0, got ${maxGap}`);
  const wakeAfter = o.wakeAfterIdleSeconds ?? 0.1;
  if (!(wakeAfter > maxGap && Number.isFinite(wakeAfter))) throw new RangeError(`fitEngineSteps: wakeAfterIdleSeconds must be a finite number > maxGapSeconds (${maxGap}), got ${wakeAfter}`);
  const runs = (reports.length > 0 && Array.isArray(reports[0]) ? reports : [reports]) as readonly (readonly StepReport[])[];
  const byRun = runs.map((run) => [...run].filter((r) => r.items.length > 0).sort((a, b) => a.startedAt - b.startedAt));
  const steps = byRun.flat();
  if (steps.length < 8) throw new RangeError(`fitEngineSteps: needs at least 8 steps with compute, got ${steps.length}`);
  const copyTime = (r: StepReport) =>
    base.copiesShareCompute ? (['h2d', 'd2h'] as const).reduce((a, ch) => a + (r.copyBytes[ch] > 0 ? r.copyBytes[ch] / base.channel(ch).bandwidth : 0), 0) : 0;
  let gapSum = 0;
  let gaps = 0;
  const y: number[] = [];
  // A step that follows an idle stretch: as the engine reports it (idleSeconds, which counts
  // the steps it does not report, such as its start-up request), else from the step before
  // it in the same run (the first of a run then counts as none: nothing is known before it).
  const woke: number[] = [];
  for (const run of byRun)
    run.forEach((r, i) => {
      const next = run[i + 1];
      let gap = next ? next.startedAt - (r.startedAt + r.seconds) : 0;
      if (!(gap >= 0 && gap <= maxGap)) gap = 0;
      else if (next) {
        gapSum += gap;
        gaps++;
      }
      y.push(Math.max(1e-7, r.seconds + gap - copyTime(r)));
      const idle = Number.isFinite(r.idleSeconds) ? r.idleSeconds : i > 0 ? r.startedAt - (run[i - 1].startedAt + run[i - 1].seconds) : 0;
      woke.push(idle >= wakeAfter ? 1 : 0);
    });
  // Relative errors matter, as in the calibration: each step weighted by 1 / its time. And
  // each kind of step (decode only, prefill only, both) weighs the same in total: a run has
  // hundreds of decode steps for a few prefills, and TTFT rides on the prefills.
  const kindOf = (r: StepReport) => (r.prefillTokens > 0 ? (r.decodeTokens > 0 ? 'mixed' : 'prefill') : 'decode');
  const count = new Map<string, number>();
  for (const r of steps) count.set(kindOf(r), (count.get(kindOf(r)) ?? 0) + 1);
  const F = o.keepShape ? steps.map((r, i) => [base.stepTime(r.items), woke[i]]) : steps.map((r, i) => [1, ...LinearCost.features(r.items), woke[i]]);
  // Weighting by the measured time itself biases the fit low: a step that ran slow (the
  // machine's noise) weighs less than one that ran fast, so the fit follows the fast ones,
  // 3-5% under the mean on this VM, and near capacity queueing multiplies that. Weights
  // from the fitted time instead (iteratively reweighted, three rounds) leave the fit on
  // the mean.
  let scale = y.slice();
  let beta: number[] = [];
  for (let round = 0; round < 3; round++) {
    const w = steps.map((r, i) => 1 / (scale[i] * Math.sqrt(count.get(kindOf(r))!)));
    beta = nnls(
      F.map((row, i) => row.map((v) => v * w[i])),
      y.map((v, i) => v * w[i]),
    );
    scale = F.map((row, i) => {
      const f = row.reduce((a, v, j) => a + v * beta[j], 0);
      return f > 1e-7 ? f : y[i];
    });
  }
  const b = base.coef;
  const coef: LinearCoefficients = o.keepShape
    ? { t0: b.t0 * beta[0], perItem: b.perItem * beta[0], perToken: b.perToken * beta[0], perPair: b.perPair * beta[0], perKvToken: b.perKvToken * beta[0] }
    : { t0: beta[0], perItem: beta[1], perToken: beta[2], perPair: beta[3], perKvToken: beta[4] };
  const wake = { afterIdleSeconds: wakeAfter, seconds: beta[o.keepShape ? 1 : 5] };
  const cost = new LinearCost({
    numLayers: base.numLayers,
    kvBytesPerTokenLayer: base.kvBytesPerTokenLayer,
    deviceKvBytes: base.deviceKvBytes,
    coef,
    channels: { h2d: base.channel('h2d'), d2h: base.channel('d2h'), storage: base.channel('storage') },
    copiesShareCompute: base.copiesShareCompute,
    wake,
  });
  const kinds = new Map<'decode' | 'prefill' | 'mixed', { steps: number; measured: number; fitted: number }>();
  steps.forEach((r, i) => {
    const kind = kindOf(r);
    const k = kinds.get(kind) ?? { steps: 0, measured: 0, fitted: 0 };
    k.steps++;
    k.measured += y[i];
    k.fitted += cost.stepTime(r.items) + woke[i] * wake.seconds;
    kinds.set(kind, k);
  });
  return {
    cost,
    coef,
    wake: { ...wake, steps: woke.reduce((a, b) => a + b, 0) },
    steps: steps.length,
    meanGapSeconds: gaps > 0 ? gapSum / gaps : 0,
    byKind: [...kinds].map(([kind, k]) => ({ kind, steps: k.steps, measured: k.measured / k.steps, fitted: k.fitted / k.steps })),
  };
}
