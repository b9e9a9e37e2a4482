// The simulator's runs in the report's terms: simulate() with KV usage per tier sampled
// after every step, on the virtual clock.
import type { Request } from '../contract/request.js';
import type { CostModel } from '../cost/cost-model.js';
import type { Scheduler } from '../sched/scheduler.js';
import { simulate } from '../sim/simulate.js';
import { reportRunFromSimulation, type ReportRun } from './report.js';

export async function simulateForReport(o: { label: string; rate: number; requests: readonly Request[]; scheduler: Scheduler; cost: CostModel }): Promise<ReportRun> {
  const kv: ReportRun['kv'] = [];
  const { device, host } = o.scheduler.kv;
  const sim = await simulate({
    requests: o.requests,
    scheduler: o.scheduler,
    cost: o.cost,
    onStep: (_plan, result) => {
      kv.push({ t: result.end, device: device.numBlocks > 0 ? device.numUsed / device.numBlocks : null, host: host.numBlocks > 0 ? host.numUsed / host.numBlocks : null });
    },
  });
  // Thousands of steps make a heavy chart and no clearer a picture: keep about 500 samples.
  const step = Math.max(1, Math.floor(kv.length / 500));
  return reportRunFromSimulation(o.label, o.rate, sim, kv.filter((_, i) => i % step === 0));
}
