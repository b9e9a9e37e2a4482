// How fast the scheduler core is: one scheduling decision with 512 running requests, and
// simulating the whole Azure conversation trace.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createScheduler, deployment, readAzureTrace, simulate, SimExecutor, type PolicyName } from '../../lib/sim/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const azure = path.resolve(here, '..', '..', '..', 'shared', 'traces', 'AzureLLMInferenceTrace_conv.csv');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall time of schedule() with `n` requests decoding (plans executed between). */
function decisionTime(policy: PolicyName, n: number, iters: number): number {
  const dep = deployment('Llama-3.1-8B', 'H100-SXM');
  const s = createScheduler({ policy, cost: dep.cost, maxRunning: n, maxBatchedTokens: 8192 });
  const ex = new SimExecutor(dep.cost);
  for (let i = 0; i < n; i++) s.add({ id: `r${i}`, arrival: 0, promptLen: 512, maxNewTokens: 100_000 }, 0);
  // Prefill everyone first.
  while (s.numWaiting > 0 || s.numRunning < n) {
    const p = s.schedule(ex.now);
    s.onResult(p, ex.executeSync(p));
  }
  for (let i = 0; i < 20; i++) {
    const p = s.schedule(ex.now);
    s.onResult(p, ex.executeSync(p));
  }
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const p = s.schedule(ex.now);
    times.push(performance.now() - t0);
    if (p.compute.length !== n) throw new Error(`expected ${n} decodes, planned ${p.compute.length}`);
    s.onResult(p, ex.executeSync(p));
  }
  return median(times);
}

export const group: BenchGroup = {
  name: 'sched-speed',
  title: 'Scheduler speed: one decision at 512 running, whole Azure conversation trace',
  estimate: '20 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const rows: Record<string, unknown>[] = [];
    const heads: Headline[] = [];
    for (const policy of ['baseline', 'layerkv'] as const) {
      ctx.progress(`decision time, ${policy}`);
      const ms = decisionTime(policy, 512, ctx.full ? 2000 : 300);
      rows.push({ policy, running: 512, 'median schedule() ms': ms });
      heads.push({ metric: `${policy}: schedule() at 512 running (median)`, value: `${(ms * 1000).toFixed(0)} us`, target: '<= 1 ms', met: ms <= 1 });
    }
    ctx.table('One scheduling decision (Llama-3.1-8B on H100, 512 decoding requests)', rows);
    if (!existsSync(azure)) {
      ctx.progress(`skipped trace timing: ${azure} not found`);
      return heads;
    }
    const reqs = readAzureTrace(azure, { ttftSlo: 2, tpotSlo: 0.1 });
    const dep = deployment('Llama-2-7B', 'A100-80G');
    const trows: Record<string, unknown>[] = [];
    for (const policy of ctx.full ? (['baseline', 'layerkv'] as const) : (['baseline'] as const)) {
      ctx.progress(`Azure conversation trace (${reqs.length} requests), ${policy}`);
      const scheduler = createScheduler({ policy, cost: dep.cost, recordTables: false });
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const r = await simulate({ requests: reqs, scheduler, deployment: dep });
      const s = (performance.now() - t0) / 1000;
      // CPU time too: on a shared machine the wall time includes other processes' turns.
      const c = process.cpuUsage(c0);
      trows.push({ policy, requests: reqs.length, steps: r.steps, 'virtual s': r.end, 'wall s': s, 'cpu s': (c.user + c.system) / 1e6, 'steps/s': r.steps / s, completed: r.metrics.completed });
      heads.push({ metric: `${policy}: simulate whole Azure conv trace`, value: `${s.toFixed(1)} s`, target: '<= 10 s', met: s <= 10 });
    }
    ctx.table('Whole Azure conversation trace (Llama-2-7B on A100)', trows);
    return heads;
  },
};
