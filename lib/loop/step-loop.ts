// The step loop both executors run under: requests arrive, the scheduler plans a step, the
// executor runs it, the scheduler hears the result and says what happened to requests. The
// simulator feeds it a list of requests with arrival times on a virtual clock; the engine
// feeds it live requests and wakes it when one arrives or is aborted.
import type { Executor, StepPlan, StepResult } from '../contract/plan.js';
import { MAX_TIME, type Request } from '../contract/request.js';
import type { Scheduler } from '../contract/scheduler.js';
import type { SeqEvent } from '../contract/events.js';

/** Where requests come from. */
export interface Arrivals {
  /** Requests that have arrived by `now`, in arrival order; each is returned once. */
  take(now: number): Request[];
  /** Arrival time of the next known request, Infinity when none is known. */
  next(): number;
  /** False once no request will ever arrive again: the loop ends when the work is done. */
  readonly open: boolean;
  /** Live sources: settles when something arrives, is aborted, or the source closes. */
  wake?(): Promise<void>;
}

/** Arrivals known up front (the simulator, trace replay). */
export class ListArrivals implements Arrivals {
  private readonly reqs: Request[];
  private i = 0;
  constructor(requests: readonly Request[]) {
    this.reqs = [...requests].sort((a, b) => a.arrival - b.arrival);
  }
  take(now: number): Request[] {
    const out: Request[] = [];
    while (this.i < this.reqs.length && this.reqs[this.i].arrival <= now) out.push(this.reqs[this.i++]);
    return out;
  }
  next(): number {
    return this.i < this.reqs.length ? this.reqs[this.i].arrival : Infinity;
  }
  get open(): boolean {
    return this.i < this.reqs.length;
  }
  get arrived(): number {
    return this.i;
  }
  get total(): number {
    return this.reqs.length;
  }
}

export interface StepLoopOptions {
  scheduler: Scheduler;
  executor: Executor;
  arrivals: Arrivals;
  /** Safety limit on steps (10 million). */
  maxSteps?: number;
  /** After every step: the plan, the executor's result and the events. */
  onStep?: (plan: StepPlan, result: StepResult, events: readonly SeqEvent[]) => void;
  /** Stops the loop after the current step (the engine's close()). */
  signal?: AbortSignal;
}

export interface StepLoopResult {
  /** Plans made, idle waits included. */
  steps: number;
  /** Steps that computed something. */
  computeSteps: number;
}

export async function runSteps(opts: StepLoopOptions): Promise<StepLoopResult> {
  const { scheduler, executor, arrivals } = opts;
  const maxSteps = opts.maxSteps ?? 10_000_000;
  if (!(Number.isInteger(maxSteps) && maxSteps > 0)) throw new RangeError(`runSteps: maxSteps must be a positive integer, got ${maxSteps}`);
  let steps = 0;
  let computeSteps = 0;
  let stalls = 0;
  // An empty plan first polls (what the scheduler and the executor have to report now,
  // without waiting: a rejection, an abort, a transfer done); only an empty plan after a
  // poll that changed nothing waits.
  let polled = false;
  while (!opts.signal?.aborted) {
    const now = executor.now;
    if (!Number.isFinite(now)) throw new RangeError(`runSteps: the executor's clock must be finite, got ${now}`);
    for (const r of arrivals.take(now)) scheduler.add(r, now);
    if (!scheduler.hasWork()) {
      const next = arrivals.next();
      if (next < Infinity) await executor.idle(next);
      else if (arrivals.open && arrivals.wake) await arrivals.wake();
      else break;
      continue;
    }
    if (++steps > maxSteps) {
      throw new Error(`runSteps: ${scheduler.name} ran past maxSteps = ${maxSteps} at t = ${now.toFixed(3)} s; raise maxSteps or look for a livelock`);
    }
    const plan = scheduler.schedule(now);
    const busy = plan.compute.length > 0 || plan.transfers.length > 0;
    let result: StepResult;
    if (busy || carriesRecords(plan)) {
      // A plan with only table updates, frees or ended requests still goes to the executor:
      // it keeps its own copy of the tables.
      result = await executor.execute(plan);
      if (plan.compute.length > 0) computeSteps++;
    } else if (!polled) {
      result = await executor.idle(now);
    } else {
      // Nothing to run: wait for a transfer to land, the next arrival, or (live) a wake-up.
      result = await executor.idle(arrivals.next(), arrivals.wake?.());
    }
    const waited: boolean = polled && !busy && !carriesRecords(plan);
    // An executor whose clock goes back or leaves the representable range would never reach
    // the next arrival.
    if (!(executor.now >= now && executor.now <= 2 * MAX_TIME)) {
      throw new Error(`runSteps: the executor's clock went from ${now} to ${executor.now} s in step ${plan.step}; it must move forward and stay finite`);
    }
    const events = scheduler.onResult(plan, result);
    opts.onStep?.(plan, result, events);
    const progressed: boolean = busy || carriesRecords(plan) || events.length > 0 || result.transfersDone.length > 0 || (waited && (executor.now > now || arrivals.wake !== undefined));
    polled = !progressed && !polled;
    if (progressed) stalls = 0;
    else if (waited) stalls++;
    if (stalls >= 3) {
      throw new Error(
        `runSteps: ${scheduler.name} stalled at t = ${now.toFixed(3)} s: it has work but plans nothing, and no transfer or arrival is pending (${executor.pendingTransfers} transfers in flight)`,
      );
    }
  }
  return { steps, computeSteps };
}

function carriesRecords(p: StepPlan): boolean {
  return p.tables.length > 0 || p.freed.length > 0 || p.staged.length > 0 || p.landing.length > 0 || p.ended.length > 0 || p.preempted.length > 0;
}
