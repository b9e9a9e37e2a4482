// LayerKV vs the vLLM-like baseline (LayerKV paper's setting: Llama-2-7B on one L20,
// 1 req/s, context length 1K..16K): mean and p99 TTFT, SLO violations, throughput.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createScheduler, deployment, simulate, synthetic } from '../../lib/sim/index.js';

const TTFT_SLO = 10;
const TPOT_SLO = 0.2;

export const group: BenchGroup = {
  name: 'layerkv',
  title: 'LayerKV vs baseline: TTFT vs context length (Llama-2-7B, L20, 1 req/s, simulated)',
  estimate: '10 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const dep = deployment('Llama-2-7B', 'L20-48G');
    const lengths = ctx.full ? [1024, 2048, 4096, 8192, 12288, 16384] : [1024, 4096, 8192, 16384];
    const n = ctx.full ? 300 : 80;
    const rows: Record<string, unknown>[] = [];
    let bestSpeedup = 0;
    let bestAt = 0;
    let worstThroughputLoss = 0;
    let violBase = 0;
    let violLkv = 0;
    for (const len of lengths) {
      const requests = synthetic({ n, rate: 1, promptLen: [Math.round(len * 0.9), len], outputLen: [64, 256], ttftSlo: TTFT_SLO, tpotSlo: TPOT_SLO, seed: 42 });
      const res: Record<string, Awaited<ReturnType<typeof simulate>>> = {};
      for (const policy of ['baseline', 'layerkv'] as const) {
        ctx.progress(`${policy} at ${len} tokens`);
        const scheduler = createScheduler({ policy, cost: dep.cost, recordBlockChanges: false });
        res[policy] = await simulate({ requests, scheduler, deployment: dep });
        const m = res[policy].metrics;
        rows.push({
          context: len,
          policy,
          'ttft mean s': m.ttft.mean,
          'ttft p99 s': m.ttft.p99,
          'tpot mean s': m.tpot.mean,
          'tpot p99 s': m.tpot.p99,
          'slo viol %': 100 * (1 - m.sloAttainment),
          'ttft viol': m.ttftViolations,
          'tpot viol': m.tpotViolations,
          'tok/s': m.throughput.outputTokensPerSec,
          preempt: scheduler.stats.preemptions,
        });
      }
      const b = res.baseline.metrics;
      const l = res.layerkv.metrics;
      const speedup = b.ttft.mean / l.ttft.mean;
      if (speedup > bestSpeedup) {
        bestSpeedup = speedup;
        bestAt = len;
      }
      worstThroughputLoss = Math.max(worstThroughputLoss, 1 - l.throughput.outputTokensPerSec / b.throughput.outputTokensPerSec);
      violBase += 1 - b.sloAttainment;
      violLkv += 1 - l.sloAttainment;
    }
    ctx.table(`TTFT SLO ${TTFT_SLO} s, TPOT SLO ${TPOT_SLO} s, ${n} requests per point, prompts in [0.9 L, L], outputs 64..256`, rows);
    const violReduction = violBase > 0 ? (violBase - violLkv) / violBase : 0;
    ctx.record('lengths', lengths);
    return [
      { metric: 'max mean-TTFT speedup (layerkv / baseline)', value: `${bestSpeedup.toFixed(2)}x at ${bestAt}`, target: 'up to 11x (paper)', met: bestSpeedup >= 11 },
      { metric: 'SLO violations vs baseline (mean over lengths)', value: `${(100 * violReduction).toFixed(1)}% fewer`, target: '28.7% fewer (paper)', met: violReduction >= 0.287 },
      { metric: 'worst throughput loss', value: `${(100 * worstThroughputLoss).toFixed(1)}%`, target: '<= 3%', met: worstThroughputLoss <= 0.03 },
    ];
  },
};
