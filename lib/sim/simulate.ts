// The simulator: the step loop (lib/loop) over a list of requests, on the virtual-clock
// executor, collecting events into serving metrics.
import type { CostModel } from '../cost/cost-model.js';
import type { Executor, StepPlan, StepResult } from '../contract/plan.js';
import type { Request } from '../contract/request.js';
import type { Scheduler } from '../contract/scheduler.js';
import type { SeqEvent } from '../contract/events.js';
import { ListArrivals, runSteps } from '../loop/step-loop.js';
import { MAX_TIME } from '../contract/request.js';
import { show } from '../util/show.js';
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
  if (opts.executorOptions !== undefined && (typeof opts.executorOptions !== 'object' || opts.executorOptions === null)) {
    throw new TypeError(`simulate: executorOptions must be an object, got ${show(opts.executorOptions)}`);
  }
  const given = opts.executor as Partial<Executor> | undefined;
  if (given !== undefined && (typeof given !== 'object' || given === null || typeof given.execute !== 'function' || typeof given.idle !== 'function' || typeof given.now !== 'number')) {
    throw new TypeError(`simulate: executor must be an Executor (execute, idle, now), got ${show(given)}`);
  }
  if (opts.onStep !== undefined && typeof opts.onStep !== 'function') throw new TypeError(`simulate: onStep must be a function, got ${show(opts.onStep)}`);
  // The loop sorts by arrival and the metrics key by id, so these must hold for every
  // request; a request wrong in any other way is the scheduler's to reject.
  const ids = new Set<string>();
  opts.requests.forEach((r: unknown, i) => {
    if (typeof r !== 'object' || r === null) throw new TypeError(`simulate: requests[${i}] must be a Request object, got ${show(r)}`);
    const { id, arrival } = r as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0) throw new TypeError(`simulate: requests[${i}].id must be a non-empty string, got ${show(id)}`);
    if (ids.has(id)) throw new RangeError(`simulate: requests[${i}].id ${show(id)} repeats an earlier request's id`);
    ids.add(id);
    if (typeof arrival !== 'number' || !(arrival >= 0 && arrival <= MAX_TIME)) throw new RangeError(`simulate: requests[${i}].arrival must be a time in [0, 1e9] s, got ${show(arrival)}`);
  });
  if (opts.maxSteps !== undefined && !(Number.isSafeInteger(opts.maxSteps) && opts.maxSteps > 0)) throw new RangeError(`simulate: maxSteps must be a positive integer, got ${show(opts.maxSteps)}`);
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
  }).catch((err: unknown) => {
    // The loop names itself; the caller called simulate.
    if (err instanceof Error) err.message = err.message.replace(/^runSteps: /, 'simulate: ');
    throw err;
  });
  return { metrics: collector.summary(), collector, steps, computeSteps, end: executor.now, events, rejected };
}
