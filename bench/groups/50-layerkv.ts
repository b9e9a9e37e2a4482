// LayerKV vs the vLLM-like baseline (LayerKV paper's setting: Llama-2-7B on one L20,
// 1 req/s, context length 1K..16K): mean and p99 TTFT, SLO violations, throughput.
//
// Workload: prompts in [0.9 L, L]; outputs uniform in [128, 512] tokens (mean 320, close to
// ShareGPT's ~338-token mean replies that vLLM and LayerKV-style evaluations sample from).
// The L20 holds ~52.6K tokens of Llama-2-7B KV (48 GB x 0.9 - 13.5 GB weights - 2 GiB
// activations = 27.6 GB at 512 KiB/token): ~25 requests at 2K, ~12 at 4K, 3 at 16K.
//
// Where the time goes (TTFT = queueing + prefill, simulated, 80 requests):
// - Up to ~3K the baseline queues for KV blocks (the paper's premise): a 2K prompt
//   prefills in 0.42 s, but with 25 requests decoding ~320 tokens at 60-80 ms each it waits
//   ~4 s for blocks. LayerKV admits it with layers on the host and cuts TTFT ~4x.
// - From 4K on, 1 req/s is beyond the GPU's compute: one prompt's prefill alone takes
//   0.92 s (4K), 1.9 s (8K), 4.3 s (16K) of an L20 per second of arrivals, so the queue
//   grows without bound under any memory policy; TTFT is hundreds of seconds at 16K (as the
//   paper's motivation figure shows) and is set by how fast prefills can be served, which
//   per-layer allocation can raise only from the baseline's memory-bound rate to the
//   compute-bound one (~1.2-1.5x here). The paper's 11x needs the memory-bound window.
//
// Reached vs the paper (default suite, `node --import tsx bench/run.ts layerkv`): mean TTFT
// up to ~6.6x (2K: 4.44 -> 0.68 s; 3K: 23.2 -> 9.2 s; 4K: 45.8 -> 25.9 s; target up to 11x),
// SLO violations 21% fewer over the lengths (target 28.7%), no throughput loss (layerkv
// is 0-9% above the baseline, more with longer contexts; target <= 3% loss). What holds
// TTFT back: in this cost model the window where the baseline is memory-bound but the GPU has compute to spare
// is narrow (2K-3K at these output lengths); above it every policy is compute-overloaded.
// The throughput loss used to be ~11% at 4K, from preemptions by recompute (39-65 at 3K-4K
// vs 5 for the baseline): the victim was the newest admission, which under LayerKV usually
// had every layer on the host waiting for promotion, so recomputing it freed no device
// block (59 of 65 at 4K) and the loop went on to the next. The victim is now the newest
// sequence that holds device blocks: 3-5 preemptions, as many as the baseline's.
// TPOT stays within the 0.2 s SLO on average (0.09-0.17 s; it was 0.47-0.95 s when
// promotions gated every decode step on PCIe).
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createScheduler, deployment, simulate, synthetic } from '../../lib/sim/index.js';

const TTFT_SLO = 10;
const TPOT_SLO = 0.2;
/** ShareGPT-like reply lengths (see the header). */
const OUTPUT_LEN: [number, number] = [128, 512];

export const group: BenchGroup = {
  name: 'layerkv',
  title: 'LayerKV vs baseline: TTFT vs context length (Llama-2-7B, L20, 1 req/s, simulated)',
  estimate: '5 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const dep = deployment('Llama-2-7B', 'L20-48G');
    const lengths = ctx.full ? [1024, 2048, 3072, 4096, 8192, 12288, 16384] : [1024, 2048, 3072, 4096, 8192, 16384];
    const n = ctx.full ? 300 : 80;
    const rows: Record<string, unknown>[] = [];
    let bestSpeedup = 0;
    let bestAt = 0;
    let worstThroughputLoss = 0;
    let violBase = 0;
    let violLkv = 0;
    // Near the memory-bound edge one unlucky burst of arrivals moves the baseline's mean
    // TTFT several-fold, so each point averages several seeds and reports their spread.
    const seeds = ctx.full ? [42, 43, 44, 45, 46] : [42, 43, 44];
    let worstSpeedupAtBest = 0;
    let bestSpeedupAtBest = 0;
    for (const len of lengths) {
      const agg: Record<string, Record<string, number>> = {};
      const perSeedSpeedup: number[] = [];
      for (const seed of seeds) {
        const requests = synthetic({ n, rate: 1, promptLen: [Math.round(len * 0.9), len], outputLen: OUTPUT_LEN, ttftSlo: TTFT_SLO, tpotSlo: TPOT_SLO, seed });
        const ttft: Record<string, number> = {};
        for (const policy of ['baseline', 'layerkv'] as const) {
          ctx.progress(`${policy} at ${len} tokens, seed ${seed}`);
          const scheduler = createScheduler({ policy, cost: dep.cost, recordTables: false });
          const m = (await simulate({ requests, scheduler, deployment: dep })).metrics;
          ttft[policy] = m.ttft.mean;
          const a = (agg[policy] ??= {});
          const add = (k: string, v: number) => (a[k] = (a[k] ?? 0) + v / seeds.length);
          add('ttft mean s', m.ttft.mean);
          add('ttft p99 s', m.ttft.p99);
          add('tpot mean s', m.tpot.mean);
          add('tpot p99 s', m.tpot.p99);
          add('slo viol %', 100 * (1 - m.sloAttainment));
          add('tok/s', m.throughput.outputTokensPerSec);
          add('preempt', scheduler.stats.preemptions);
        }
        perSeedSpeedup.push(ttft.baseline / ttft.layerkv);
      }
      for (const policy of ['baseline', 'layerkv'] as const) rows.push({ context: len, policy, ...agg[policy] });
      const b = agg.baseline;
      const l = agg.layerkv;
      const speedup = b['ttft mean s'] / l['ttft mean s'];
      if (speedup > bestSpeedup) {
        bestSpeedup = speedup;
        bestAt = len;
        worstSpeedupAtBest = Math.min(...perSeedSpeedup);
        bestSpeedupAtBest = Math.max(...perSeedSpeedup);
      }
      worstThroughputLoss = Math.max(worstThroughputLoss, 1 - l['tok/s'] / b['tok/s']);
      violBase += b['slo viol %'] / 100;
      violLkv += l['slo viol %'] / 100;
    }
    ctx.table(`TTFT SLO ${TTFT_SLO} s, TPOT SLO ${TPOT_SLO} s, ${n} requests per point, mean over seeds ${seeds.join('/')}, prompts in [0.9 L, L], outputs ${OUTPUT_LEN[0]}..${OUTPUT_LEN[1]}`, rows);
    const violReduction = violBase > 0 ? (violBase - violLkv) / violBase : 0;
    ctx.record('lengths', lengths);
    return [
      { metric: 'max mean-TTFT speedup (layerkv / baseline)', value: `${bestSpeedup.toFixed(2)}x at ${bestAt} (per seed ${worstSpeedupAtBest.toFixed(1)}-${bestSpeedupAtBest.toFixed(1)}x)`, target: 'up to 11x (paper)', met: bestSpeedup >= 11 },
      { metric: 'SLO violations vs baseline (mean over lengths)', value: `${(100 * violReduction).toFixed(1)}% fewer`, target: '28.7% fewer (paper)', met: violReduction >= 0.287 },
      { metric: 'worst throughput loss', value: `${(100 * worstThroughputLoss).toFixed(1)}%`, target: '<= 3%', met: worstThroughputLoss <= 0.03 },
    ];
  },
};
