// Trace replay with prefix reuse: the Mooncake conversation trace (shared hash_ids = shared
// prefixes, replayed through an LRU prefix store) and the Azure conversation trace, through
// every policy. Traces are read from ../shared/traces; the group skips when it is missing.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { annotatePrefixHits, createScheduler, deployment, POLICIES, readAzureTrace, readMooncakeTrace, simulate, type PolicyName, type Request } from '../../lib/sim/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// The trace was recorded on a cluster; one simulated server takes a fraction of its rate.
const MOONCAKE_SCALE = 12;
const traces = path.resolve(here, '..', '..', '..', 'shared', 'traces');

async function replay(ctx: BenchContext, title: string, requests: Request[], policies: readonly PolicyName[], dep: ReturnType<typeof deployment>) {
  const rows: Record<string, unknown>[] = [];
  for (const policy of policies) {
    ctx.progress(`${title}: ${policy}`);
    const scheduler = createScheduler({ policy, cost: dep.cost, recordTables: false });
    const t0 = performance.now();
    const r = await simulate({ requests, scheduler, deployment: dep });
    const m = r.metrics;
    rows.push({
      policy,
      'ttft p50 s': m.ttft.median,
      'ttft p99 s': m.ttft.p99,
      'tpot p50 s': m.tpot.median,
      'tpot p99 s': m.tpot.p99,
      'slo %': 100 * m.sloAttainment,
      'goodput req/s': m.goodput,
      'loaded Ktok': scheduler.stats.loadedTokens / 1000,
      preempt: scheduler.stats.preemptions,
      'sim s': (performance.now() - t0) / 1000,
    });
  }
  ctx.table(title, rows);
  return rows;
}

export const group: BenchGroup = {
  name: 'trace',
  title: 'Trace replay with prefix reuse: TTFT/TPOT and goodput per policy (simulated)',
  estimate: '20 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const mooncake = path.join(traces, 'mooncake_conversation_trace.jsonl');
    const azure = path.join(traces, 'AzureLLMInferenceTrace_conv.csv');
    if (!existsSync(traces)) {
      ctx.progress(`skipped: trace folder ${traces} not found`);
      return [{ metric: 'skipped', value: `no ${traces}` }];
    }
    const heads: Headline[] = [];
    const dep = deployment('Llama-3.1-8B', 'A100-80G');
    if (existsSync(mooncake)) {
      const limit = ctx.full ? 12_031 : 400;
      const reqs = annotatePrefixHits(readMooncakeTrace(mooncake, { limit, timeScale: MOONCAKE_SCALE, ttftSlo: 10, tpotSlo: 0.1, chunkTokens: 512 }), { capacityChunks: 20_000 });
      const rows = await replay(ctx, `Mooncake conversation, first ${reqs.length} requests at 1/${MOONCAKE_SCALE} of the trace rate (one server's share), Llama-3.1-8B on A100, TTFT SLO 10 s, TPOT SLO 0.1 s`, reqs, POLICIES, dep);
      const base = rows.find((r) => r.policy === 'baseline')!;
      const best = rows.reduce((a, r) => ((r['goodput req/s'] as number) > (a['goodput req/s'] as number) ? r : a));
      heads.push({ metric: 'mooncake ttft p50, cake vs baseline', value: `${(rows.find((r) => r.policy === 'cake')!['ttft p50 s'] as number).toFixed(2)} s vs ${(base['ttft p50 s'] as number).toFixed(2)} s` });
      heads.push({ metric: 'mooncake best goodput', value: `${best.policy} ${(best['goodput req/s'] as number).toFixed(2)} req/s (baseline ${(base['goodput req/s'] as number).toFixed(2)})` });
    } else ctx.progress(`skipped Mooncake: ${mooncake} not found`);
    if (existsSync(azure)) {
      const limit = ctx.full ? 1e9 : 2000;
      const reqs = readAzureTrace(azure, { limit, ttftSlo: 2, tpotSlo: 0.1 });
      const rows = await replay(ctx, `Azure conversation, ${reqs.length} requests, Llama-3.1-8B on A100 (no prefix info: baseline and layerkv)`, reqs, ['baseline', 'layerkv'], dep);
      heads.push({ metric: 'azure goodput baseline / layerkv', value: rows.map((r) => (r['goodput req/s'] as number).toFixed(2)).join(' / ') + ' req/s' });
    } else ctx.progress(`skipped Azure: ${azure} not found`);
    return heads;
  },
};
