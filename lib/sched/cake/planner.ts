// One plan for every Cake request in flight at once.
//
// A lone request is planned by its own CakeTracker (min over k of max(front reaches k, loads
// of [k, n) land) + suffix, which is the oracle). With several, each tracker's view is wrong:
// the store serves everyone's loads in issue order, and a front gets GPU budget only after the
// fronts admitted before it. So the scheduler hands all of them to planCake each step and
// imposes the splits it returns.
//
// The model is two machines, each serving its queue in one fixed order, the same on both:
//   - the GPU runs the fronts one after another in admission (FCFS) order: the prefix coordinator
//     hands Cake's leftover budget to its requests in that order, so a later front computes
//     only when the earlier ones are done or waiting for loads;
//   - the store runs the loads in the order they are issued: first everything already issued
//     (it cannot be cancelled, so it is the channel's backlog), then each request's new loads,
//     in the same FCFS order.
// Request j's TTFT ends at max(front done, its loads landed) + its suffix step. A suffix is GPU
// work that arrives while later fronts run; it delays them by its length (it is served first:
// FCFS). The objective is the sum of those ends (mean TTFT; arrivals are constants).
//
// Why FCFS on both machines and not, say, shortest-first: for fixed splits, concurrent
// open-shop schedules have an optimal solution with one permutation on every machine, so
// nothing is lost by tying the two orders together; which permutation is a fairness choice,
// and FCFS is the core's (ordinary prefills and both single-mode baselines use it), so Cake
// is compared with them on the same order and no request can be starved by later arrivals.
// Within that order the planner minimises mean TTFT.
//
// The search: start from compute-only (every split at its highest), load-only (lowest) and
// the previous step's plan, improve each by coordinate descent (one request's split at a
// time, every value) and by pair moves (shift one request's split up and another's down,
// which trades GPU time for store time between two requests, the exchange that single-request
// moves cannot see because the objective is a sum of maxima), and keep the best. Compute-only
// and load-only are candidates, so the planned total is never above either (the guard the
// brief asks for holds by construction in the model). Splits only below already issued loads
// are possible (loads cannot be revoked), and never below a chunk the front has started.

export interface PlanJob {
  /** Smallest split allowed: the front has started (or computed) the chunks below it. */
  first: number;
  /** Largest split allowed: the lowest chunk whose load was issued (stored chunks if none). */
  last: number;
  /** Stored chunks of the prompt. */
  stored: number;
  /** GPU seconds for the front to go from where it is to the end of chunk k - 1, for k in
   *  [first, last]: front[k - first]. Non-decreasing in k. */
  front: ArrayLike<number>;
  /** GPU seconds to compute everything, suffix included, in one run of steps: only when no
   *  load was ever issued (last === stored), else undefined. */
  computeAll?: number;
  /** Store seconds per chunk load. */
  loadTime: number;
  /** When this request's already issued loads land (absolute seconds), -Infinity if none. */
  loadsLandAt: number;
  /** GPU seconds of the step(s) after the prefix: the uncached suffix, or the recomputed last
   *  token of a fully stored prompt. */
  suffix: number;
}

/** A request past its split (draining or in its suffix): it owes only its suffix, from readyAt. */
export interface FixedJob {
  readyAt: number;
  suffix: number;
}

export interface PlanInput {
  now: number;
  /** When the store finishes everything already issued (absolute seconds). */
  storageFreeAt: number;
  /** Plannable requests in FCFS order. */
  jobs: readonly PlanJob[];
  fixed?: readonly FixedJob[];
  /** Last step's splits for the same jobs (clamped to the allowed ranges), a search start. */
  previous?: ArrayLike<number>;
}

export interface CakePlan {
  splits: Int32Array;
  /** Planned sum of the jobs' first-token times (absolute seconds). */
  total: number;
  /** The same sum with every split at its highest (compute-only from here) and lowest (load-only). */
  computeOnly: number;
  loadOnly: number;
  /** Planned first-token time of each job. */
  finish: Float64Array;
}

/** Planned first-token times of `jobs` under `splits` (the model in the header). */
export function evaluatePlan(input: PlanInput, splits: ArrayLike<number>, finish?: Float64Array): number {
  const { now, jobs } = input;
  const fixed = input.fixed ?? [];
  // Suffixes waiting to interrupt the front chain: when ready, how long, and whether used.
  const m = jobs.length + fixed.length;
  const readyAt = new Float64Array(m);
  const length = new Float64Array(m);
  const used = new Uint8Array(m);
  let pend = 0;
  for (const f of fixed) {
    readyAt[pend] = Math.max(now, f.readyAt);
    length[pend++] = f.suffix;
  }
  let gpu = now;
  let store = Math.max(now, input.storageFreeAt);
  let total = 0;
  for (let j = 0; j < jobs.length; j++) {
    const job = jobs[j];
    const k = splits[j];
    const all = k === job.stored && job.computeAll !== undefined;
    const work = all ? job.computeAll! : job.front[k - job.first];
    const suffix = all ? 0 : job.suffix;
    let end = gpu + work;
    if (work > 0) {
      // Earlier suffixes that become ready while this front runs go first and push it back;
      // taking them in ready order lets one that the extension reaches be counted too.
      for (;;) {
        let pick = -1;
        for (let i = 0; i < pend; i++) {
          if (!used[i] && readyAt[i] >= gpu && readyAt[i] < end && (pick < 0 || readyAt[i] < readyAt[pick])) pick = i;
        }
        if (pick < 0) break;
        used[pick] = 1;
        end += length[pick];
      }
    }
    gpu = end;
    const loads = job.last - k;
    let landed = job.loadsLandAt;
    if (loads > 0) {
      store += loads * job.loadTime;
      landed = Math.max(landed, store);
    }
    const ready = Math.max(end, landed, now);
    const f = ready + suffix;
    if (finish) finish[j] = f;
    total += f;
    if (suffix > 0) {
      readyAt[pend] = ready;
      length[pend++] = suffix;
    }
  }
  return total;
}

function checkJob(j: PlanJob, i: number): void {
  const bad = (what: string) => {
    throw new RangeError(`planCake: jobs[${i}].${what}`);
  };
  if (!Number.isInteger(j.first) || !Number.isInteger(j.last) || !Number.isInteger(j.stored)) bad('first, last and stored must be integers');
  if (!(0 <= j.first && j.first <= j.last && j.last <= j.stored)) bad(`needs 0 <= first <= last <= stored, got ${j.first}, ${j.last}, ${j.stored}`);
  if (j.front.length !== j.last - j.first + 1) bad(`front must have last - first + 1 = ${j.last - j.first + 1} entries, got ${j.front.length}`);
  for (let k = 0; k < j.front.length; k++) if (!(j.front[k] >= 0 && Number.isFinite(j.front[k]))) bad(`front[${k}] must be a finite number >= 0, got ${j.front[k]}`);
  if (j.computeAll !== undefined && (!(j.computeAll >= 0) || j.last !== j.stored)) bad('computeAll must be >= 0 and given only when last === stored');
  if (!(j.loadTime >= 0 && Number.isFinite(j.loadTime))) bad(`loadTime must be a finite number >= 0, got ${j.loadTime}`);
  if (!(j.suffix >= 0 && Number.isFinite(j.suffix))) bad(`suffix must be a finite number >= 0, got ${j.suffix}`);
  if (Number.isNaN(j.loadsLandAt)) bad('loadsLandAt must be a time or -Infinity');
}

/** Splits for every plannable request minimising the planned sum of first-token times. */
export function planCake(input: PlanInput): CakePlan {
  if (!input || typeof input !== 'object' || !Array.isArray(input.jobs)) throw new TypeError('planCake: input with a jobs array required');
  if (!Number.isFinite(input.now)) throw new RangeError(`planCake: now must be finite, got ${input.now}`);
  input.jobs.forEach(checkJob);
  const jobs = input.jobs;
  const n = jobs.length;
  const hi = Int32Array.from(jobs, (j) => j.last);
  const lo = Int32Array.from(jobs, (j) => j.first);
  const computeOnly = evaluatePlan(input, hi);
  const loadOnly = evaluatePlan(input, lo);
  const starts: Int32Array[] = [hi, lo];
  // Greedy in FCFS order: each request's best split given the ones before it, with the later
  // ones left computing (or loading) everything; the earlier a request, the more its choice
  // shapes everyone's queues, so this start is often near the optimum's basin.
  for (const rest of [hi, lo]) {
    const g = rest.slice();
    for (let j = 0; j < n; j++) {
      let bestK = g[j];
      let bestV = evaluatePlan(input, g);
      for (let k = jobs[j].first; k <= jobs[j].last; k++) {
        g[j] = k;
        const v = evaluatePlan(input, g);
        if (v < bestV - 1e-12) {
          bestV = v;
          bestK = k;
        }
      }
      g[j] = bestK;
    }
    starts.push(g);
  }
  if (input.previous && input.previous.length === n) {
    starts.push(Int32Array.from(jobs, (j, i) => Math.min(j.last, Math.max(j.first, input.previous![i]))));
  }
  let best = computeOnly <= loadOnly ? hi.slice() : lo.slice();
  let bestTotal = Math.min(computeOnly, loadOnly);
  for (const start of starts) {
    const s = start.slice();
    const total = improve(input, s);
    // Strictly better only: ties keep the single-mode plan found first.
    if (total < bestTotal - 1e-12) {
      best = s;
      bestTotal = total;
    }
  }
  const finish = new Float64Array(n);
  evaluatePlan(input, best, finish);
  return { splits: best, total: bestTotal, computeOnly, loadOnly, finish };
}

/** Local search from `s` (modified in place); returns its planned total. */
function improve(input: PlanInput, s: Int32Array): number {
  const jobs = input.jobs;
  const n = jobs.length;
  let cur = evaluatePlan(input, s);
  // Each pass strictly lowers the total, so this ends; the bound only caps pathological
  // float noise. A few passes suffice in practice.
  for (let pass = 0; pass < 50; pass++) {
    let better = false;
    for (let j = 0; j < n; j++) {
      const keep = s[j];
      let bestK = keep;
      for (let k = jobs[j].first; k <= jobs[j].last; k++) {
        if (k === keep) continue;
        s[j] = k;
        const v = evaluatePlan(input, s);
        if (v < cur - 1e-12) {
          cur = v;
          bestK = k;
          better = true;
        }
      }
      s[j] = bestK;
    }
    // Pair moves: one request computes d more chunks while another loads d more (or the
    // reverse), which keeps the two machines' total work roughly in place.
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        if (a === b) continue;
        for (let d = 1; d <= jobs[a].last - jobs[a].first; d++) {
          const ka = s[a] + d;
          const kb = s[b] - d;
          if (ka > jobs[a].last || kb < jobs[b].first) break;
          const oa = s[a];
          const ob = s[b];
          s[a] = ka;
          s[b] = kb;
          const v = evaluatePlan(input, s);
          if (v < cur - 1e-12) {
            cur = v;
            better = true;
            break;
          }
          s[a] = oa;
          s[b] = ob;
        }
      }
    }
    if (!better) break;
  }
  return cur;
}
