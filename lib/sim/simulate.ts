// The simulation driver: feeds arrivals to a scheduler at their times and loops
// schedule -> execute -> onResult on an executor's clock, collecting events into metrics.
import type { Executor, Scheduler, SeqEvent, StepPlan, StepResult } from '../sched/plan.js';
import { MAX_TIME, MAX_TIME_TEXT, type Request } from '../workload/request.js';
import { show } from '../util/show.js';
import { MetricsCollector, type ServingMetrics } from '../metrics/collector.js';
import { SimExecutor, type SimCost, type SimExecutorOptions } from './executor.js';

export interface SimulateOptions {
  requests: readonly Request[];
  scheduler: Scheduler;
  /** The executor; or give `deployment` (or `cost`) for a SimExecutor over its cost model. */
  executor?: Executor;
  deployment?: { cost: SimCost };
  cost?: SimCost;
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
  if (opts.executorOptions !== undefined && (typeof opts.executorOptions !== 'object' || opts.executorOptions === null))
    throw new TypeError(`simulate: executorOptions must be an object, got ${show(opts.executorOptions)}`);
  const cost = opts.deployment?.cost ?? opts.cost;
  const given = opts.executor as Partial<Executor> | undefined;
  if (given !== undefined && (typeof given !== 'object' || given === null || typeof given.execute !== 'function' || typeof given.idle !== 'function' || typeof given.now !== 'number'))
    throw new TypeError(`simulate: executor must be an Executor (execute, idle, now), got ${show(given)}`);
  const executor: Executor | undefined = opts.executor ?? (cost ? new SimExecutor(cost, opts.executorOptions) : undefined);
  if (!executor) throw new TypeError('simulate: give executor, deployment or cost');
  const maxSteps = opts.maxSteps ?? 10_000_000;
  if (!(Number.isInteger(maxSteps) && maxSteps > 0)) throw new RangeError(`simulate: maxSteps must be a positive integer, got ${show(maxSteps)}`);
  if (opts.onStep !== undefined && typeof opts.onStep !== 'function') throw new TypeError(`simulate: onStep must be a function, got ${show(opts.onStep)}`);
  // The driver sorts by arrival and keys metrics by id, so these two must hold for every
  // request; a request that is wrong in any other way is the scheduler's to reject.
  const ids = new Set<string>();
  opts.requests.forEach((r: unknown, i) => {
    if (typeof r !== 'object' || r === null) throw new TypeError(`simulate: requests[${i}] must be a Request object, got ${show(r)}`);
    const { id, arrival } = r as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0) throw new TypeError(`simulate: requests[${i}].id must be a non-empty string, got ${show(id)}`);
    if (ids.has(id)) throw new RangeError(`simulate: requests[${i}].id ${show(id)} repeats an earlier request's id`);
    ids.add(id);
    if (typeof arrival !== 'number' || !(arrival >= 0 && arrival <= MAX_TIME))
      throw new RangeError(`simulate: requests[${i}].arrival must be a time in [0, ${MAX_TIME_TEXT}] s, got ${show(arrival)}`);
  });

  const reqs = [...opts.requests].sort((a, b) => a.arrival - b.arrival);
  const collector = new MetricsCollector();
  for (const r of reqs) collector.addRequest(r);
  // The SimExecutor's synchronous paths skip a promise per step on long traces.
  const sim = executor instanceof SimExecutor ? executor : null;
  const events: SeqEvent[] | undefined = opts.keepEvents ? [] : undefined;
  const rejected: { seq: string; reason: string }[] = [];
  let next = 0;
  let steps = 0;
  let computeSteps = 0;
  let stalls = 0;

  for (;;) {
    const now = executor.now;
    while (next < reqs.length && reqs[next].arrival <= now) scheduler.add(reqs[next++], now);
    if (!scheduler.hasWork()) {
      if (next >= reqs.length) break;
      if (sim) sim.idleSync(reqs[next].arrival);
      else await executor.idle(reqs[next].arrival);
      continue;
    }
    if (++steps > maxSteps) {
      throw new Error(`simulate: ${scheduler.name} ran past maxSteps = ${maxSteps} at t = ${now.toFixed(3)} s (${next}/${reqs.length} requests arrived); raise maxSteps or look for a livelock`);
    }
    const plan = scheduler.schedule(now);
    let result: StepResult;
    const busy = plan.compute.length > 0 || plan.transfers.length > 0;
    if (busy) {
      result = sim ? sim.executeSync(plan) : await executor.execute(plan);
      if (plan.compute.length > 0) computeSteps++;
    } else {
      const until = next < reqs.length ? reqs[next].arrival : Infinity;
      result = sim ? sim.idleSync(until) : await executor.idle(until);
    }
    const ev = scheduler.onResult(plan, result);
    collector.onEvents(ev);
    for (const e of ev) if (e.kind === 'rejected') rejected.push({ seq: e.seq, reason: e.reason ?? '' });
    if (events) events.push(...ev);
    opts.onStep?.(plan, result, ev);
    // A custom executor whose clock leaves the representable range would never reach the
    // next arrival.
    if (!(executor.now >= now && executor.now <= MAX_TIME * 2)) {
      throw new Error(`simulate: the executor's clock went from ${now} to ${executor.now} s in step ${plan.step}; it must move forward and stay finite`);
    }
    const progressed = busy || ev.length > 0 || result.transfersDone.length > 0 || executor.now > now;
    stalls = progressed ? 0 : stalls + 1;
    if (stalls >= 3) {
      throw new Error(
        `simulate: ${scheduler.name} stalled at t = ${now.toFixed(3)} s: it has work but plans nothing, and no transfer or arrival is pending (${next}/${reqs.length} requests arrived, ${executor.pendingTransfers} transfers in flight)`,
      );
    }
  }
  return { metrics: collector.summary(), collector, steps, computeSteps, end: executor.now, events, rejected };
}
