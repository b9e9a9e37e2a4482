// LayerKV vs the vLLM-like baseline (LayerKV paper's setting: Llama-2-7B on one L20,
// 1 req/s, context length 1K..16K): mean and p99 TTFT, SLO violations, throughput.
//
// Workload: prompts in [0.9 L, L]; outputs uniform in [128, 512] tokens (mean 320, close to
// ShareGPT's ~338-token mean replies that vLLM and LayerKV-style evaluations sample from).
// The L20 holds ~52.6K tokens of Llama-2-7B KV (48 GB x 0.9 - 13.5 GB weights - 2 GiB
// activations = 27.6 GB at 512 KiB/token): ~25 requests at 2K, ~12 at 4K, 3 at 16K.
//
// Why the gain is bounded: LayerKV helps where the baseline waits for KV blocks for all of a
// prompt's layers while the GPU has compute to spare. Where one request per second is more
// prefill than the GPU computes, every policy queues for compute, and per-layer allocation
// can raise only the admission rate, not the prefill rate. The figures are in the README's
// benchmark record.
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
    let tpotP99AtBest = 0;
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
        tpotP99AtBest = l['tpot p99 s'];
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
      // A TTFT gain bought with decodes that miss their TPOT SLO is not the paper's claim.
      { metric: 'layerkv TPOT p99 at that point', value: `${tpotP99AtBest.toFixed(3)} s`, target: `<= ${TPOT_SLO} s (the TPOT SLO)`, met: tpotP99AtBest <= TPOT_SLO },
      { metric: 'SLO violations vs baseline (mean over lengths)', value: `${(100 * violReduction).toFixed(1)}% fewer`, target: '28.7% fewer (paper)', met: violReduction >= 0.287 },
      { metric: 'worst throughput loss', value: `${(100 * worstThroughputLoss).toFixed(1)}%`, target: '<= 3%', met: worstThroughputLoss <= 0.03 },
    ];
  },
};
