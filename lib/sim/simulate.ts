// The simulator: the step loop (lib/loop) over a list of requests, on the virtual-clock
// executor, collecting events into serving metrics.
import type { CostModel } from '../cost/cost-model.js';
import type { Executor, StepPlan, StepResult } from '../contract/plan.js';
import type { Request } from '../contract/request.js';
import type { Scheduler } from '../contract/scheduler.js';
import type { SeqEvent } from '../contract/events.js';
import { ListArrivals, runSteps } from '../loop/step-loop.js';
import { MetricsCollector, type ServingMetrics } from '../metrics/collector.js';
import { SimExecutor, type SimExecutorOptions } from './executor.js';

export interface SimulateOptions {
  requests: readonly Request[];
  scheduler: Scheduler;
  /** The executor; or give `deployment` (or `cost`) for a SimExecutor over its cost model. */
  executor?: Executor;
  deployment?: { cost: CostModel };
  cost?: CostModel;
  /** For the SimExecutor built here. */
  executorOptions?: SimExecutorOptions;
  /** Safety limit on steps (10 million). */
  maxSteps?: number;
  /** Called after every step (invariant checks, traces). */
  onStep?: (plan: StepPlan, result: StepResult, events: readonly SeqEvent[]) => void;
  /** Keep every event in the result (off: long traces make millions). */
  keepEvents?: boolean;
}

export interface SimulateResult {
  metrics: ServingMetrics;
  collector: MetricsCollector;
  /** Scheduler steps (plans), idle waits included. */
  steps: number;
  /** Steps that computed something. */
  computeSteps: number;
  /** Virtual clock at the end, seconds. */
  end: number;
  events?: SeqEvent[];
  /** Rejected requests with their reasons. */
  rejected: { seq: string; reason: string }[];
}

export async function simulate(opts: SimulateOptions): Promise<SimulateResult> {
  if (!opts || typeof opts !== 'object') throw new TypeError('simulate: options object required');
  const { scheduler } = opts;
  if (!scheduler || typeof scheduler.schedule !== 'function') throw new TypeError('simulate: scheduler is required');
  if (!Array.isArray(opts.requests)) throw new TypeError('simulate: requests must be an array');
  for (const [i, r] of opts.requests.entries()) {
    if (!r || typeof r !== 'object') throw new TypeError(`simulate: requests[${i}] must be a request object`);
    if (!(Number.isFinite(r.arrival) && r.arrival >= 0)) throw new RangeError(`simulate: requests[${i}].arrival must be a finite time >= 0 s, got ${r.arrival}`);
  }
  const cost = opts.deployment?.cost ?? opts.cost;
  const executor: Executor | undefined = opts.executor ?? (cost ? new SimExecutor(cost, opts.executorOptions) : undefined);
  if (!executor) throw new TypeError('simulate: give executor, deployment or cost');
  const collector = new MetricsCollector();
  for (const r of opts.requests) collector.addRequest(r);
  const events: SeqEvent[] | undefined = opts.keepEvents ? [] : undefined;
  const rejected: { seq: string; reason: string }[] = [];
  const { steps, computeSteps } = await runSteps({
    scheduler,
    executor,
    arrivals: new ListArrivals(opts.requests),
    maxSteps: opts.maxSteps,
    onStep: (plan, result, ev) => {
      collector.onEvents(ev);
      for (const e of ev) if (e.kind === 'rejected') rejected.push({ seq: e.seq, reason: e.reason ?? '' });
      if (events) events.push(...ev);
      opts.onStep?.(plan, result, ev);
    },
  });
  return { metrics: collector.summary(), collector, steps, computeSteps, end: executor.now, events, rejected };
}
