// A benchmark run's figures as vLLM's benchmark_serving defines them:
//   TTFT  first token event - request sent
//   TPOT  (E2E - TTFT) / (output tokens - 1), per request with more than one output token
//   ITL   every gap between consecutive token events, pooled over requests
//   E2E   end of the stream - request sent
//   throughput  completed requests, output tokens, and input + output tokens per second of
//               the run's duration (first request sent to last response finished)
//   goodput     completed requests meeting every SLO given, per second
// Latency statistics cover completed requests; failed ones are counted apart.
import { percentile } from '../metrics/percentiles.js';
import type { RequestOutcome } from './client.js';

export interface Stat {
  mean: number;
  std: number;
  median: number;
  p90: number;
  p99: number;
}

export interface Slos {
  /** Seconds. */
  ttft?: number;
  tpot?: number;
  e2e?: number;
}

export interface RunMetrics {
  requests: number;
  completed: number;
  failed: number;
  /** Failures by cause ("HTTP 429", "timed out", ...), counted. */
  failures: Record<string, number>;
  duration: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  cachedTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  goodput: number | null;
  ttft: Stat;
  tpot: Stat;
  itl: Stat;
  e2e: Stat;
}

export function stat(values: readonly number[]): Stat {
  const s = Float64Array.from(values).sort();
  const n = s.length;
  let sum = 0;
  for (const v of s) sum += v;
  const mean = n === 0 ? NaN : sum / n;
  let sq = 0;
  for (const v of s) sq += (v - mean) ** 2;
  return { mean, std: n === 0 ? NaN : Math.sqrt(sq / n), median: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99) };
}

export function tpotOf(o: RequestOutcome): number | null {
  return o.ok && o.outputTokens > 1 ? (o.e2e - o.ttft) / (o.outputTokens - 1) : null;
}

function failureKind(o: RequestOutcome): string {
  if (o.status >= 400) return `HTTP ${o.status}`;
  const e = o.error ?? 'unknown';
  return e.startsWith('timed out') ? 'timed out' : e.length > 60 ? `${e.slice(0, 60)}…` : e;
}

export function runMetrics(outcomes: readonly RequestOutcome[], duration: number, slos: Slos = {}): RunMetrics {
  const done = outcomes.filter((o) => o.ok);
  const failures: Record<string, number> = {};
  for (const o of outcomes) if (!o.ok) failures[failureKind(o)] = (failures[failureKind(o)] ?? 0) + 1;
  const tpots = done.map(tpotOf).filter((x): x is number => x !== null);
  const perSec = (x: number) => (duration > 0 ? x / duration : 0);
  const anySlo = slos.ttft !== undefined || slos.tpot !== undefined || slos.e2e !== undefined;
  const good = done.filter((o) => {
    const tp = tpotOf(o);
    return (slos.ttft === undefined || o.ttft <= slos.ttft) && (slos.tpot === undefined || tp === null || tp <= slos.tpot) && (slos.e2e === undefined || o.e2e <= slos.e2e);
  }).length;
  const inTok = done.reduce((a, o) => a + o.promptLen, 0);
  const outTok = done.reduce((a, o) => a + o.outputTokens, 0);
  return {
    requests: outcomes.length,
    completed: done.length,
    failed: outcomes.length - done.length,
    failures,
    duration,
    totalInputTokens: inTok,
    totalOutputTokens: outTok,
    cachedTokens: done.reduce((a, o) => a + (o.cachedTokens ?? 0), 0),
    requestThroughput: perSec(done.length),
    outputThroughput: perSec(outTok),
    totalTokenThroughput: perSec(inTok + outTok),
    goodput: anySlo ? perSec(good) : null,
    ttft: stat(done.map((o) => o.ttft)),
    tpot: stat(tpots),
    itl: stat(done.flatMap((o) => o.itl)),
    e2e: stat(done.map((o) => o.e2e)),
  };
}
