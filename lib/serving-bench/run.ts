// Runs one benchmark point: sends each request at its arrival time (open loop: a slow
// server does not slow the arrivals down, as in vLLM's benchmark_serving), optionally under
// a concurrency cap, polls /metrics for KV usage meanwhile, and summarizes.
import { sendRequest, type ClientOptions, type RequestOutcome } from './client.js';
import { runMetrics, type RunMetrics, type Slos } from './metrics.js';
import { pollMetrics, type KvSample } from './poll.js';
import type { BenchRequest } from './workload.js';

export interface RunOptions extends ClientOptions {
  requests: readonly BenchRequest[];
  /** Names the run in tables and the report (a policy, a server). */
  label: string;
  /** The request rate this point was generated at (Infinity: all at once; NaN: a trace). */
  rate: number;
  /** Requests in flight at most (default: no cap). */
  maxConcurrency?: number;
  slos?: Slos;
  /** Poll /metrics this often (ms; 0 = never; default 250). */
  metricsIntervalMs?: number;
  onProgress?: (done: number, total: number, failed: number) => void;
  signal?: AbortSignal;
}

export interface RunResult {
  label: string;
  rate: number;
  metrics: RunMetrics;
  /** Per request, for CDFs and re-analysis (the ITL gaps are left out to keep files small). */
  requests: Omit<RequestOutcome, 'itl'>[];
  kv: KvSample[];
}

export async function runBenchmark(o: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  const clock = () => (performance.now() - t0) / 1000;
  const cap = o.maxConcurrency ?? Infinity;
  if (!(cap >= 1)) throw new RangeError(`runBenchmark: maxConcurrency must be >= 1, got ${o.maxConcurrency}`);
  const poll = (o.metricsIntervalMs ?? 250) > 0 ? pollMetrics(o.url, o.metricsIntervalMs ?? 250, clock, o.apiKey) : null;
  const order = [...o.requests].sort((a, b) => a.arrival - b.arrival);
  const outcomes: RequestOutcome[] = new Array(order.length);
  let inFlight = 0;
  let done = 0;
  let failed = 0;
  const slots: (() => void)[] = [];
  const acquire = async () => {
    while (inFlight >= cap) await new Promise<void>((r) => slots.push(r));
    inFlight++;
  };
  const release = () => {
    inFlight--;
    slots.shift()?.();
  };
  const tasks: Promise<void>[] = [];
  for (const [i, r] of order.entries()) {
    if (o.signal?.aborted) break;
    const wait = r.arrival - clock();
    if (wait > 0) await new Promise((res) => setTimeout(res, wait * 1000));
    await acquire();
    tasks.push(
      sendRequest(o, r, clock, o.signal).then((out) => {
        outcomes[i] = out;
        release();
        done++;
        if (!out.ok) failed++;
        o.onProgress?.(done, order.length, failed);
      }),
    );
  }
  await Promise.all(tasks);
  const duration = clock();
  const kv = poll ? await poll.stop() : [];
  const all = outcomes.filter((x) => x !== undefined);
  return {
    label: o.label,
    rate: o.rate,
    metrics: runMetrics(all, duration, o.slos),
    requests: all.map(({ itl: _itl, ...rest }) => rest),
    kv,
  };
}
