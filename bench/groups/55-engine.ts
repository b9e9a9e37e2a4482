// The engine for real: baseline vs LayerKV on this machine's CPU backend, over request rates,
// with the simulator's prediction for the same requests beside each row.
//
// Method:
//   1. A dummy Llama-shaped model (real shapes, seeded weights) is loaded and the cost model
//      is fitted to it by running it (calibrateEngineCost: decode batches and prefill chunks,
//      least squares; copies between the pools). That fitted model is both what the engine's
//      scheduler plans with and the simulator's preset for this machine.
//   2. Requests arrive as a Poisson process; each row runs them through a live engine
//      (generate() called at each arrival time, wall clock) and through simulate() with the
//      same scheduler settings, pool sizes and cost model (virtual clock).
//   3. The device tier holds a few requests' KV, so the baseline queues for blocks while
//      LayerKV admits with layers on the host.
// TTFT is first token minus arrival; TPOT is (last token - first token) / (tokens - 1) per
// request, means and p99 over requests, as vLLM's benchmark_serving defines them. Beside
// them, each engine step's wall time over what the fitted cost model predicted for it
// (median over the run): where that is near 1 and TTFT still differs, the scheduling
// dynamics differ; where it is not, the fit does not hold on this machine now. The host
// overhead of issuing a step (building the step's arrays, the runner's and copies' native
// calls) is measured separately on a 32-layer model with 64 decoding sequences.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { calibrateEngineCost, createEngine, type Engine } from '../../lib/engine/index.js';
import { loadModel } from '../../lib/model/model.js';
import { parseModelConfig } from '../../lib/model/config.js';
import { createScheduler, type PolicyName } from '../../lib/sched/index.js';
import { simulate } from '../../lib/sim/simulate.js';
import { SimExecutor } from '../../lib/sim/executor.js';
import { synthetic } from '../../lib/workload/synthetic.js';
import { percentiles } from '../../lib/metrics/percentiles.js';
import type { Request } from '../../lib/contract/request.js';
import type { CostModel } from '../../lib/cost/cost-model.js';

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  hidden_size: 256,
  intermediate_size: 704,
  num_hidden_layers: 8,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
  vocab_size: 4096,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
};
const BLOCK = 16;
const TTFT_SLO = 2;
const TPOT_SLO = 0.1;

interface RunStats {
  ttftMean: number;
  ttftP99: number;
  tpotMean: number;
  tpotP99: number;
  tokPerSec: number;
  slo: number;
  done: number;
}

function summarize(rows: { ttft: number; tpot: number; tokens: number; end: number; arrival: number }[], span: number): RunStats {
  const t = percentiles(rows.map((r) => r.ttft));
  const p = percentiles(rows.filter((r) => Number.isFinite(r.tpot)).map((r) => r.tpot));
  const ok = rows.filter((r) => r.ttft <= TTFT_SLO && (!Number.isFinite(r.tpot) || r.tpot <= TPOT_SLO)).length;
  return { ttftMean: t.mean, ttftP99: t.p99, tpotMean: p.mean, tpotP99: p.p99, tokPerSec: rows.reduce((a, r) => a + r.tokens, 0) / span, slo: ok / rows.length, done: rows.length };
}

async function runEngine(engine: Engine, reqs: Request[], ratios: number[]): Promise<RunStats> {
  const t0 = performance.now();
  const results = await Promise.all(
    reqs.map(
      (r) =>
        new Promise<{ ttft: number; tpot: number; tokens: number; end: number; arrival: number }>((resolve, reject) => {
          setTimeout(() => {
            const g = engine.generate(r.promptTokens!, { maxTokens: r.maxNewTokens, ignoreEos: true, ttftSlo: TTFT_SLO, tpotSlo: TPOT_SLO });
            g.result.then((x) => resolve({ ttft: x.stats.ttft, tpot: x.stats.tpot, tokens: x.stats.generatedTokens, end: (performance.now() - t0) / 1000, arrival: r.arrival }), reject);
          }, r.arrival * 1000);
        }),
    ),
  );
  const span = Math.max(...results.map((r) => r.end)) - Math.min(...reqs.map((r) => r.arrival));
  return summarize(results, span);
}

async function runSim(policy: PolicyName, reqs: Request[], cost: CostModel, pools: { device: number; host: number }, budget: number): Promise<RunStats> {
  const scheduler = createScheduler({ policy, cost, blockSize: BLOCK, deviceBlocks: pools.device, hostBlocks: pools.host, maxBatchedTokens: budget, recordTables: false });
  const withSlo = reqs.map((r) => ({ ...r, ttftSlo: TTFT_SLO, tpotSlo: TPOT_SLO }));
  const r = await simulate({ requests: withSlo, scheduler, executor: new SimExecutor(cost) });
  const rows = [...r.collector.all()].map((x) => {
    const n = x.tokenTimes.length;
    return { ttft: x.tokenTimes[0] - x.arrival, tpot: n > 1 ? (x.tokenTimes[n - 1] - x.tokenTimes[0]) / (n - 1) : NaN, tokens: n, end: x.finishedAt ?? 0, arrival: x.arrival };
  });
  return summarize(rows, r.metrics.duration);
}

/** Median host seconds to issue a step of 64 decodes on a 32-layer model. */
async function issueOverhead(): Promise<{ median: number; p90: number }> {
  const cfg = { ...CONFIG, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 32, num_attention_heads: 1, num_key_value_heads: 1, vocab_size: 256 };
  const issue: number[] = [];
  const engine = await createEngine({
    model: { config: cfg, dummySeed: 3 },
    backend: 'cpu',
    dtype: 'fp32',
    deviceKvBytes: 64 * 32 * 8 * (2 * 64 * BLOCK * 4),
    maxBatchedTokens: 4096,
    maxRunning: 64,
    onStep: (s) => {
      if (s.decodeTokens === 64 && s.prefillTokens === 0) issue.push(s.issueSeconds);
    },
  });
  const gens = Array.from({ length: 64 }, (_, i) => engine.generate(Array.from({ length: 64 }, (_, j) => (i * 7 + j) % 256), { maxTokens: 40, ignoreEos: true }));
  await Promise.all(gens.map((g) => g.result));
  await engine.close();
  const p = percentiles(issue);
  return { median: p.median, p90: p.p90 };
}

export const group: BenchGroup = {
  name: 'engine',
  title: 'Engine vs simulator: baseline and LayerKV on the CPU backend over request rates (dummy 8-layer model)',
  estimate: '90 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    ctx.progress('loading the model and fitting the cost model to this machine');
    const model = await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: 1 }, { dtype: 'fp32' });
    const c = parseModelConfig(CONFIG);
    const blockBytes = 2 * c.numKvHeads * c.headDim * BLOCK * 4;
    // Device: 8 requests of 320 tokens' worth of every layer; host: plenty.
    const deviceBlocks = 8 * Math.ceil(320 / BLOCK) * c.numLayers;
    const hostBlocks = 16 * deviceBlocks;
    const cal = await calibrateEngineCost(model, { deviceKvBytes: deviceBlocks * blockBytes, maxChunk: 256, maxContext: 512 });
    model.release();
    ctx.table(
      'Calibration: fitted step-time coefficients (LinearCost) and copy channels',
      [
        { constant: 't0 (per step)', value: cal.coef.t0 },
        { constant: 'per item', value: cal.coef.perItem },
        { constant: 'per token', value: cal.coef.perToken },
        { constant: 'per attention pair', value: cal.coef.perPair },
        { constant: 'per KV token read', value: cal.coef.perKvToken },
        { constant: 'h2d GB/s', value: cal.channels.h2dBandwidth / 1e9 },
        { constant: 'd2h GB/s', value: cal.channels.d2hBandwidth / 1e9 },
        { constant: 'copy latency s', value: cal.channels.transferLatency },
      ],
    );
    const worst = Math.max(...cal.points.map((p) => Math.abs(p.fitted / p.measured - 1)));
    ctx.table(`Calibration fit, ${cal.seconds.toFixed(1)} s (worst point ${(100 * worst).toFixed(0)}% off)`, cal.points.map((p) => ({ ...p, 'measured ms': p.measured * 1e3, 'fitted ms': p.fitted * 1e3, measured: undefined, fitted: undefined })));
    // Capacity: one 256-token prefill and 32 output tokens of decode at batch ~8.
    const perReq = cal.cost.prefillChunkTime(256, 0) + 40 * cal.cost.stepTime(Array.from({ length: 8 }, () => ({ phase: 'decode' as const, tokens: 1, cachedBefore: 280 }))) / 8;
    const capacity = 1 / perReq;
    const rates = (ctx.full ? [0.3, 0.6, 0.9, 1.2] : [0.4, 0.8, 1.1]).map((f) => f * capacity);
    const n = ctx.full ? 60 : 32;
    const rows: Record<string, unknown>[] = [];
    let worstTtft = 0;
    let worstTpot = 0;
    let orderAgrees = true;
    for (const rate of rates) {
      const reqs = synthetic({ n, rate, promptLen: [192, 288], outputLen: [16, 48], seed: 7 }).map((r, i) => ({ ...r, promptTokens: Int32Array.from({ length: r.promptLen }, (_, j) => (i * 131 + j * 17) % c.vocabSize) }));
      const res: Record<string, { real: RunStats; sim: RunStats }> = {};
      for (const policy of ['baseline', 'layerkv'] as const) {
        ctx.progress(`${policy} at ${rate.toFixed(2)} req/s: engine`);
        const ratios: number[] = [];
        const engine = await createEngine({
          model: { config: CONFIG, dummySeed: 1 },
          backend: 'cpu',
          dtype: 'fp32',
          policy,
          deviceKvBytes: deviceBlocks * blockBytes,
          hostKvBytes: hostBlocks * blockBytes,
          maxBatchedTokens: 512,
          blockSize: BLOCK,
          cost: cal.cost,
          onStep: (s) => ratios.push(s.seconds / s.predictedSeconds),
        });
        const real = await runEngine(engine, reqs, ratios);
        await engine.close();
        ctx.progress(`${policy} at ${rate.toFixed(2)} req/s: simulator`);
        const sim = await runSim(policy, reqs, cal.cost, { device: deviceBlocks, host: hostBlocks }, 512);
        res[policy] = { real, sim };
        const r = (a: number, b: number) => (b > 0 ? a / b : NaN);
        rows.push({
          'req/s': rate,
          policy,
          'ttft mean s': real.ttftMean,
          'sim': sim.ttftMean,
          'ttft p99 s': real.ttftP99,
          'sim p99': sim.ttftP99,
          'tpot mean s': real.tpotMean,
          'sim tpot': sim.tpotMean,
          'tpot p99 s': real.tpotP99,
          'sim tpot p99': sim.tpotP99,
          'tok/s': real.tokPerSec,
          'slo %': 100 * real.slo,
          'sim slo %': 100 * sim.slo,
          'step real/fitted': percentiles(ratios).median,
          'ttft real/sim': r(real.ttftMean, sim.ttftMean),
          'tpot real/sim': r(real.tpotMean, sim.tpotMean),
        });
        worstTtft = Math.max(worstTtft, Math.abs(r(real.ttftMean, sim.ttftMean) - 1));
        worstTpot = Math.max(worstTpot, Math.abs(r(real.tpotMean, sim.tpotMean) - 1));
      }
      const realOrder = res.baseline.real.ttftMean >= res.layerkv.real.ttftMean;
      const simOrder = res.baseline.sim.ttftMean >= res.layerkv.sim.ttftMean;
      if (realOrder !== simOrder) orderAgrees = false;
    }
    ctx.table(`Engine (wall clock) vs simulator (same requests, settings and fitted cost); ${n} requests per row, prompts 192-288, outputs 16-48, device ${deviceBlocks} blocks, TTFT SLO ${TTFT_SLO} s, TPOT SLO ${TPOT_SLO} s`, rows);
    ctx.progress('host overhead of issuing a step: 32 layers, 64 decoding sequences');
    const ov = await issueOverhead();
    ctx.table('Host overhead of issuing one step (32 layers, 64 decodes): building the step and the native calls', [{ 'median ms': ov.median * 1e3, 'p90 ms': ov.p90 * 1e3 }]);
    ctx.record('calibration', cal.coef);
    return [
      { metric: 'engine vs simulator: worst mean-TTFT deviation', value: `${(100 * worstTtft).toFixed(0)}%`, target: '<= 15%', met: worstTtft <= 0.15 },
      { metric: 'engine vs simulator: worst mean-TPOT deviation', value: `${(100 * worstTpot).toFixed(0)}%`, target: '<= 15%', met: worstTpot <= 0.15 },
      { metric: 'engine vs simulator: same policy order (TTFT) at every rate', value: orderAgrees ? 'yes' : 'no', target: 'yes', met: orderAgrees },
      { metric: 'host overhead per step (32 layers, 64 sequences), median', value: `${(ov.median * 1e3).toFixed(2)} ms`, target: '<= 1 ms', met: ov.median <= 1e-3 },
    ];
  },
};
