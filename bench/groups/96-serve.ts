// The server under load: baseline, layerkv and layerkv+cake behind the OpenAI-compatible
// server on loopback, measured by the serving benchmark client exactly as `kvcake
// bench-serve` measures any server (streamed /v1/completions with token-id prompts; TTFT,
// TPOT, ITL, E2E as vLLM's benchmark_serving defines them), with the simulator's prediction
// for the same requests and pool sizes beside each row, and one HTML report of it all.
//
// Method: a dummy 8-layer Llama-shaped model on the CPU backend; its cost model is fitted
// by a short calibration run (the engine's calibrateEngineCost), and both the engine's
// scheduler and the simulator plan with it. The device KV tier holds a few requests' KV,
// so the baseline queues for blocks while LayerKV keeps some layers on the host. Requests
// arrive as a Poisson process at fractions of the capacity the fitted model predicts; every
// policy gets the same requests. Client and server share this process and its cores,
// equally for every policy. Prompts start with one of four shared 128-token prefixes:
// with no prefix store in this build, layerkv+cake has nothing to load and equals layerkv.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { calibrateEngineCost } from '../../lib/engine/index.js';
import { loadModel } from '../../lib/model/model.js';
import { createScheduler, type PolicyName } from '../../lib/sched/index.js';
import { startServer } from '../../lib/server/index.js';
import { buildWorkload, renderReport, reportRunsFromResults, runBenchmark, simulateForReport, type ReportRun, type RunResult } from '../../lib/serving-bench/index.js';
import { BLOCK, BLOCK_BYTES, CONFIG, capacityOf, servingEngine, servingPools } from '../serving-model.js';

const BUDGET = 512;
const POLICIES: PolicyName[] = ['baseline', 'layerkv', 'layerkv+cake'];
const SLOS = { ttft: 2, tpot: 0.1 };

export const group: BenchGroup = {
  name: 'serve',
  title: 'Serving over HTTP: baseline vs layerkv vs layerkv+cake behind the OpenAI-compatible server (CPU, dummy 8-layer model)',
  estimate: '60 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    if (ctx.backend === 'cuda') ctx.progress('the serve group runs on the CPU backend (a dummy model sized for it)');
    ctx.progress('fitting the cost model to this machine');
    const model = await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: 1 }, { dtype: 'fp32' });
    // Room for the KV of about four requests: the baseline waits for blocks at these rates.
    const pools = servingPools(4);
    const { deviceBlocks, hostBlocks } = pools;
    const cal = await calibrateEngineCost(model, { deviceKvBytes: deviceBlocks * BLOCK_BYTES, maxChunk: 256, maxContext: 512, reps: 3 });
    model.release();
    const capacity = capacityOf(cal.cost);
    const fractions = ctx.full ? [0.4, 0.7, 1.0, 1.3] : [0.6, 1.1];
    const n = ctx.full ? 60 : 24;
    const rates = fractions.map((f) => Number((f * capacity).toFixed(2)));

    const results: RunResult[] = [];
    const simRuns: ReportRun[] = [];
    const rows: Record<string, unknown>[] = [];
    let errors = 0;
    for (const policy of POLICIES) {
      const engine = await servingEngine({ policy, pools, maxBatchedTokens: BUDGET, cost: cal.cost });
      const server = await startServer({ engine, port: 0, modelName: 'dummy-8x256' });
      try {
        for (const rate of rates) {
          const requests = buildWorkload({ kind: 'synthetic', n, rate, inputLen: [192, 288], outputLen: [16, 48], sharedPrefix: { groups: 4, tokens: 128 }, seed: 7 }, { lo: 0, hi: CONFIG.vocab_size }, { ttftSlo: SLOS.ttft, tpotSlo: SLOS.tpot });
          ctx.progress(`${policy} at ${rate} req/s: ${n} requests over HTTP`);
          const r = await runBenchmark({
            url: server.url,
            model: 'dummy-8x256',
            requests,
            label: policy,
            rate,
            slos: SLOS,
            metricsIntervalMs: 100,
            onProgress: (done, total) => {
              if (done === total || done % 10 === 0) ctx.progress(`  ${done}/${total}`);
            },
          });
          results.push(r);
          errors += r.metrics.failed;
          const sim = await simulateForReport({
            label: policy,
            rate,
            requests: requests.map((q) => ({ id: q.id, arrival: q.arrival, promptLen: q.prompt.length, maxNewTokens: q.outputLen, ttftSlo: SLOS.ttft, tpotSlo: SLOS.tpot })),
            scheduler: createScheduler({ policy, cost: cal.cost, blockSize: BLOCK, deviceBlocks, hostBlocks, maxBatchedTokens: BUDGET, recordTables: false }),
            cost: cal.cost,
          });
          simRuns.push(sim);
          const m = r.metrics;
          const simP = sim.ttft.slice().sort((a, b) => a - b);
          rows.push({
            'req/s': rate,
            policy,
            done: m.completed,
            failed: m.failed,
            'TTFT p50 s': m.ttft.median,
            'TTFT p99 s': m.ttft.p99,
            'sim p50': simP[Math.floor(simP.length / 2)],
            'TPOT mean s': m.tpot.mean,
            'ITL p99 s': m.itl.p99,
            'E2E p50 s': m.e2e.median,
            'out tok/s': m.outputThroughput,
            goodput: m.goodput,
            'peak device KV %': 100 * Math.max(0, ...r.kv.map((s) => s.device ?? 0)),
            'peak host KV %': 100 * Math.max(0, ...r.kv.map((s) => s.host ?? 0)),
          });
        }
      } finally {
        await server.close(1000);
      }
    }
    ctx.table(
      `Serving over loopback HTTP, ${n} requests per row (prompts 192-288 tokens with 4 shared 128-token prefixes, outputs 16-48), device ${deviceBlocks} layer-blocks, SLOs TTFT ${SLOS.ttft} s / TPOT ${SLOS.tpot} s; sim = the simulator on the fitted cost`,
      rows,
    );
    const here = path.dirname(fileURLToPath(import.meta.url));
    const dir = path.join(here, '..', 'results');
    mkdirSync(dir, { recursive: true });
    const reportPath = path.join(dir, 'serve-report.html');
    writeFileSync(
      reportPath,
      renderReport([...reportRunsFromResults(results), ...simRuns], {
        title: 'kvcake serving benchmark: baseline vs layerkv vs layerkv+cake (CPU, dummy 8-layer model)',
        notes: [`${n} requests per point; rates ${rates.join(', ')} req/s (fractions ${fractions.join(', ')} of the fitted capacity ${capacity.toFixed(2)} req/s)`, 'dotted: the simulator on the same requests with the fitted cost model'],
      }),
    );
    ctx.record('runs', results);
    ctx.record('report', path.relative(process.cwd(), reportPath));
    ctx.progress(`report: ${path.relative(process.cwd(), reportPath)}`);
    const top = rates[rates.length - 1];
    const at = (p: PolicyName) => results.find((r) => r.label === p && r.rate === top)!.metrics;
    const ratio = at('layerkv').ttft.p99 / at('baseline').ttft.p99;
    return [
      { metric: `TTFT p99 layerkv / baseline at ${top} req/s over HTTP`, value: `${ratio.toFixed(2)}x`, target: '< 1', met: ratio < 1 },
      { metric: 'failed requests (all policies and rates)', value: String(errors), target: '0', met: errors === 0 },
    ];
  },
};
