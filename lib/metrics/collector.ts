// Serving metrics from scheduler events, defined as vLLM's benchmark_serving defines them:
//   TTFT = first token - arrival
//   TPOT = (E2E - TTFT) / (output tokens - 1), per request with more than one output token
//   ITL  = every gap between consecutive tokens of a request, pooled over requests
//   E2E  = finish - arrival
// Latency statistics cover completed requests. SLO attainment counts every request added:
// one that was rejected or never finished misses; a request without an SLO meets it.
import type { SeqEvent } from '../contract/events.js';
import type { Request } from '../contract/request.js';
import { percentiles, type Percentiles } from './percentiles.js';

export type { Percentiles } from './percentiles.js';

export interface ServingMetrics {
  requests: number;
  completed: number;
  aborted: number;
  /** First arrival to last event, seconds. */
  duration: number;
  ttft: Percentiles;
  tpot: Percentiles;
  itl: Percentiles;
  e2e: Percentiles;
  /** Fraction of requests meeting both TTFT and TPOT SLOs. */
  sloAttainment: number;
  ttftViolations: number;
  tpotViolations: number;
  /** Requests meeting SLOs per second of duration. */
  goodput: number;
  throughput: { requestsPerSec: number; outputTokensPerSec: number; totalTokensPerSec: number };
}

export interface RequestRecord {
  id: string;
  arrival: number;
  promptLen: number;
  maxNewTokens: number;
  ttftSlo?: number;
  tpotSlo?: number;
  /** Emission time of every output token, first token first. */
  tokenTimes: number[];
  finishedAt?: number;
  rejected: boolean;
  /** Cancelled before it finished (its tokens so far count in no latency statistic). */
  aborted: boolean;
  preemptions: number;
}

export class MetricsCollector {
  private readonly records = new Map<string, RequestRecord>();
  private firstArrival = Infinity;
  private lastEvent = -Infinity;

  addRequest(req: Request): void {
    if (this.records.has(req.id)) throw new Error(`MetricsCollector.addRequest: request ${req.id} already added`);
    if (!Number.isFinite(req.arrival)) throw new Error(`MetricsCollector.addRequest: arrival of ${req.id} must be finite, got ${req.arrival}`);
    this.records.set(req.id, {
      id: req.id,
      arrival: req.arrival,
      promptLen: req.promptLen,
      maxNewTokens: req.maxNewTokens,
      ttftSlo: req.ttftSlo,
      tpotSlo: req.tpotSlo,
      tokenTimes: [],
      rejected: false,
      aborted: false,
      preemptions: 0,
    });
    if (req.arrival < this.firstArrival) this.firstArrival = req.arrival;
  }

  onEvents(events: readonly SeqEvent[]): void {
    for (const ev of events) {
      const rec = this.records.get(ev.seq);
      if (!rec) throw new Error(`MetricsCollector.onEvents: event '${ev.kind}' for unknown request ${ev.seq} (addRequest it first)`);
      if (ev.at > this.lastEvent) this.lastEvent = ev.at;
      switch (ev.kind) {
        case 'first-token':
        case 'token':
          // A recompute-preempted request prefills again and its next token may be reported
          // as a 'first-token'; what the client saw first stays its first token, so every
          // token event just appends.
          if (ev.kind === 'token' && rec.tokenTimes.length === 0) {
            throw new Error(`MetricsCollector.onEvents: 'token' before 'first-token' for request ${ev.seq}`);
          }
          rec.tokenTimes.push(ev.at);
          break;
        case 'finished':
          rec.finishedAt = ev.at;
          break;
        case 'preempted':
          rec.preemptions++;
          break;
        case 'rejected':
          rec.rejected = true;
          break;
        case 'aborted':
          rec.aborted = true;
          break;
        default:
          throw new Error(`MetricsCollector.onEvents: unknown event kind ${JSON.stringify((ev as SeqEvent).kind)}`);
      }
    }
  }

  record(id: string): RequestRecord | undefined {
    return this.records.get(id);
  }

  /** Every request's record, in the order added. */
  all(): IterableIterator<RequestRecord> {
    return this.records.values();
  }

  summary(): ServingMetrics {
    const ttfts: number[] = [];
    const tpots: number[] = [];
    const itls: number[] = [];
    const e2es: number[] = [];
    let completed = 0;
    let aborted = 0;
    let outputTokens = 0;
    let promptTokens = 0;
    let good = 0;
    let ttftViolations = 0;
    let tpotViolations = 0;
    for (const r of this.records.values()) {
      if (r.aborted) aborted++;
      const done = r.finishedAt !== undefined && !r.rejected && r.tokenTimes.length > 0;
      const ttft = r.tokenTimes.length > 0 ? r.tokenTimes[0] - r.arrival : undefined;
      const n = r.tokenTimes.length;
      const tpot = done && n > 1 ? (r.finishedAt! - r.arrival - ttft!) / (n - 1) : undefined;
      if (done) {
        completed++;
        outputTokens += n;
        promptTokens += r.promptLen;
        ttfts.push(ttft!);
        e2es.push(r.finishedAt! - r.arrival);
        if (tpot !== undefined) tpots.push(tpot);
        for (let i = 1; i < n; i++) itls.push(r.tokenTimes[i] - r.tokenTimes[i - 1]);
      }
      // A missing first token misses a TTFT SLO; an unfinished request misses a TPOT SLO.
      const ttftOk = r.ttftSlo === undefined || (ttft !== undefined && ttft <= r.ttftSlo);
      const tpotOk = r.tpotSlo === undefined || (done && (tpot === undefined || tpot <= r.tpotSlo));
      if (!ttftOk) ttftViolations++;
      if (!tpotOk) tpotViolations++;
      if (done && ttftOk && tpotOk) good++;
    }
    const requests = this.records.size;
    const duration = requests === 0 || this.lastEvent === -Infinity ? 0 : Math.max(0, this.lastEvent - this.firstArrival);
    const perSec = (x: number) => (duration > 0 ? x / duration : 0);
    return {
      requests,
      completed,
      aborted,
      duration,
      ttft: percentiles(ttfts),
      tpot: percentiles(tpots),
      itl: percentiles(itls),
      e2e: percentiles(e2es),
      sloAttainment: requests === 0 ? NaN : good / requests,
      ttftViolations,
      tpotViolations,
      goodput: perSec(good),
      throughput: {
        requestsPerSec: perSec(completed),
        outputTokensPerSec: perSec(outputTokens),
        totalTokensPerSec: perSec(outputTokens + promptTokens),
      },
    };
  }
}
