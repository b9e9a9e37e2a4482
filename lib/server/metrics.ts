// Prometheus metrics through prom-client, in a registry of the server's own (two servers in
// one process do not collide). Latencies are measured where the client sees them: from the
// moment the request body was parsed to each token leaving the engine's stream. Engine
// state (queues, KV blocks per tier, the policy's traffic) is read from engine.stats() at
// scrape time, so nothing polls between scrapes.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Engine, EngineStats } from '../engine/types.js';

// Buckets as vLLM's /metrics has them, so dashboards built for vLLM read these too.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const TOKEN_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export interface RequestTiming {
  endpoint: 'completions' | 'chat';
  finishReason: string;
  ttft: number | null;
  /** Gaps between consecutive tokens, seconds. */
  itls: number[];
  e2e: number;
  promptTokens: number;
  generatedTokens: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly ttft: Histogram;
  private readonly tpot: Histogram;
  private readonly itl: Histogram;
  private readonly e2e: Histogram;
  private readonly finished: Counter<'endpoint' | 'finish_reason'>;
  private readonly rejected: Counter<'status' | 'code'>;
  readonly inFlight: Gauge;

  constructor(engine: Engine, opts: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    let snap: EngineStats | null = null;
    // One engine.stats() per scrape, shared by every gauge and counter below: the registry
    // calls each collect() synchronously in turn, so a snapshot dropped at the next
    // microtask covers exactly one scrape.
    const stats = (): EngineStats => {
      if (snap === null) {
        snap = engine.stats();
        queueMicrotask(() => {
          snap = null;
        });
      }
      return snap;
    };
    this.ttft = new Histogram({ name: 'kvcake_time_to_first_token_seconds', help: 'Time to first token: request parsed to first token out.', buckets: TTFT_BUCKETS, registers: [r] });
    this.tpot = new Histogram({ name: 'kvcake_time_per_output_token_seconds', help: 'Per request: (E2E - TTFT) / (output tokens - 1).', buckets: TOKEN_BUCKETS, registers: [r] });
    this.itl = new Histogram({ name: 'kvcake_inter_token_latency_seconds', help: 'Every gap between consecutive output tokens.', buckets: TOKEN_BUCKETS, registers: [r] });
    this.e2e = new Histogram({ name: 'kvcake_e2e_request_latency_seconds', help: 'Request parsed to last token out.', buckets: E2E_BUCKETS, registers: [r] });
    this.finished = new Counter({ name: 'kvcake_requests_finished_total', help: 'Requests that ended, by finish reason (stop, length, abort).', labelNames: ['endpoint', 'finish_reason'], registers: [r] });
    this.rejected = new Counter({ name: 'kvcake_requests_rejected_total', help: 'Requests answered with an error status.', labelNames: ['status', 'code'], registers: [r] });
    this.inFlight = new Gauge({ name: 'kvcake_http_requests_in_flight', help: 'Generation requests the server is handling now.', registers: [r] });

    const gauge = (name: string, help: string, read: (s: EngineStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          this.set(read(stats()));
        },
      });
    const tierGauge = (name: string, help: string, read: (s: EngineStats, tier: 'device' | 'host') => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['tier'],
        registers: [r],
        collect() {
          for (const tier of ['device', 'host'] as const) this.set({ tier }, read(stats(), tier));
        },
      });
    // A counter mirroring an engine total: incremented by what the total grew since the last scrape.
    const mirror = (name: string, help: string, read: (s: EngineStats) => number) => {
      let seen = 0;
      return new Counter({
        name,
        help,
        registers: [r],
        collect() {
          const v = read(stats());
          if (v > seen) this.inc(v - seen);
          seen = Math.max(seen, v);
        },
      });
    };
    gauge('kvcake_requests_waiting', 'Requests queued in the scheduler.', (s) => s.waiting);
    gauge('kvcake_requests_running', 'Requests being prefilled or decoded.', (s) => s.running);
    tierGauge('kvcake_kv_blocks_used', 'KV layer-blocks in use, per tier.', (s, t) => s.kv[t].usedBlocks);
    tierGauge('kvcake_kv_blocks_total', 'KV layer-blocks in the pool, per tier.', (s, t) => s.kv[t].totalBlocks);
    tierGauge('kvcake_kv_usage_ratio', 'Fraction of the tier\'s KV blocks in use.', (s, t) => (s.kv[t].totalBlocks > 0 ? s.kv[t].usedBlocks / s.kv[t].totalBlocks : 0));
    gauge('kvcake_prefix_cache_hit_rate', 'Prompt tokens served from the prefix store over all prompt tokens, since start.', (s) =>
      s.totals.promptTokens > 0 ? s.totals.cachedTokens / s.totals.promptTokens : 0,
    );
    gauge('kvcake_engine_step_seconds', 'Mean wall seconds of recent engine steps.', (s) => s.stepSeconds);
    gauge('kvcake_engine_issue_seconds', 'Mean host seconds spent issuing a step.', (s) => s.issueSeconds);
    mirror('kvcake_engine_steps_total', 'Engine steps run.', (s) => s.steps);
    mirror('kvcake_prompt_tokens_total', 'Prompt tokens of admitted requests.', (s) => s.totals.promptTokens);
    mirror('kvcake_prefix_cache_hits_total', 'Prompt tokens whose KV came from the prefix store.', (s) => s.totals.cachedTokens);
    mirror('kvcake_generation_tokens_total', 'Tokens generated.', (s) => s.totals.generatedTokens);
    mirror('kvcake_preemptions_total', 'Preemptions (recompute or swap).', (s) => s.totals.preemptions);
    mirror('kvcake_offloaded_bytes_total', 'KV bytes moved device -> host (LayerKV offloads, swaps).', (s) => s.totals.offloadedBytes);
    mirror('kvcake_loaded_bytes_total', 'KV bytes moved into the device tier (promotions, swap-ins, prefix loads).', (s) => s.totals.loadedBytes);
    mirror('kvcake_saved_bytes_total', 'KV bytes written to the prefix store.', (s) => s.totals.savedBytes);
    mirror('kvcake_engine_rejected_total', 'Requests the engine refused (queue full, too long).', (s) => s.totals.rejected);
    if (opts.processMetrics) collectDefaultMetrics({ register: r });
  }

  observe(t: RequestTiming): void {
    this.finished.inc({ endpoint: t.endpoint, finish_reason: t.finishReason });
    if (t.ttft !== null) this.ttft.observe(t.ttft);
    for (const g of t.itls) this.itl.observe(g);
    if (t.generatedTokens > 1 && t.ttft !== null) this.tpot.observe((t.e2e - t.ttft) / (t.generatedTokens - 1));
    if (t.finishReason !== 'abort') this.e2e.observe(t.e2e);
  }

  reject(status: number, code: string | null): void {
    this.rejected.inc({ status: String(status), code: code ?? '' });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
