// The engine for real: baseline vs LayerKV on this machine's CPU backend, over request rates,
// with the simulator's prediction for the same requests beside each row.
//
// Method:
//   1. A dummy Llama-shaped model (real shapes, seeded weights) is loaded and the cost model
//      is fitted to it by running it alone (calibrateEngineCost: decode batches, prefill
//      chunks and mixed steps, least squares; copies between the pools).
//   2. Calibration runs through the engine (baseline, their own requests: requests that
//      each arrive at an idle engine, a light phase and a busy one) refit the step costs to
//      the steps the engine really ran, host time between back-to-back steps and the cold
//      first step after an idle stretch included (fitEngineSteps). Per rate, a calibration
//      run takes turns with the rows' runs (calibration, baseline, layerkv, three times):
//      the machine's speed drifts by 10-15% between windows of ten seconds, so the preset
//      is measured among the runs it predicts.
//      That refit is the simulator's step timing for the rate, and what the engines of the
//      next rate plan with (the first rate's plan with a calibration before the rows). The
//      copies between the tiers keep their measured bandwidth and, on the CPU, lengthen the
//      step that carries them (they run on the same cores: copiesShareCompute).
//   3. Requests arrive as a Poisson process; each row runs them through a live engine
//      (generate() called at each arrival time, wall clock) three times, and through
//      simulate() once with the same scheduler settings, pool sizes and planning cost
//      (virtual clock, deterministic). The engine's figures pool every request of the three
//      runs, with the range of the runs' mean TTFT beside them. "own" is the simulator with
//      the step timing refitted to the rows' runs themselves.
//   4. The device tier holds a few requests' KV, so the baseline queues for blocks while
//      LayerKV admits with layers on the host.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { calibrateEngineCost, createEngine, fitEngineSteps, type Engine, type StepReport } from '../../lib/engine/index.js';
import { loadModel } from '../../lib/model/model.js';
import { createScheduler, type PolicyName } from '../../lib/sched/index.js';
import { simulate } from '../../lib/sim/simulate.js';
import { SimExecutor } from '../../lib/sim/executor.js';
import { synthetic } from '../../lib/workload/synthetic.js';
import { percentiles } from '../../lib/metrics/percentiles.js';
import type { Request } from '../../lib/contract/request.js';
import type { CostModel } from '../../lib/cost/cost-model.js';
import { BLOCK, BLOCK_BYTES, CONFIG, capacityOf, servingEngine, servingPools } from '../serving-model.js';

const TTFT_SLO = 2;
const TPOT_SLO = 0.1;
/** Engine runs per row and policy. */
const REPS = 3;
/** Calibration requests that each arrive at an idle engine (a prompt and 4 tokens take
 *  about 50 ms here, so 300 ms apart leaves 250 ms of idle before each, past the ~100 ms
 *  over which the wake cost ramps up), for the wake cost. */
const ISOLATED = 6;
const ISOLATED_GAP = 0.3;
/** Student's t, two-sided 95%, by degrees of freedom (index). */
const T_975 = [NaN, 12.71, 4.303, 3.182, 2.776, 2.571];

interface RunStats {
  ttftMean: number;
  ttftP50: number;
  ttftP99: number;
  tpotMean: number;
  tpotP99: number;
  tokPerSec: number;
  slo: number;
  done: number;
  /** MiB LayerKV moved to the host tier (offloads and swaps). */
  offloadMiB: number;
}

function summarize(rows: Row[], span: number): RunStats {
  const t = percentiles(rows.map((r) => r.ttft));
  const p = percentiles(rows.filter((r) => Number.isFinite(r.tpot)).map((r) => r.tpot));
  const ok = rows.filter((r) => r.ttft <= TTFT_SLO && (!Number.isFinite(r.tpot) || r.tpot <= TPOT_SLO)).length;
  return { ttftMean: t.mean, ttftP50: t.median, ttftP99: t.p99, tpotMean: p.mean, tpotP99: p.p99, tokPerSec: rows.reduce((a, r) => a + r.tokens, 0) / span, slo: ok / rows.length, done: rows.length, offloadMiB: 0 };
}

interface Row {
  ttft: number;
  tpot: number;
  tokens: number;
  end: number;
  arrival: number;
}

/** One engine run: its requests' figures, its span, and what LayerKV moved to the host. */
interface Run {
  rows: Row[];
  span: number;
  /** Mean TTFT of the run's requests, seconds. */
  ttftMean: number;
  offloadMiB: number;
  steps: StepReport[];
}

async function runEngine(engine: Engine, reqs: Request[]): Promise<Omit<Run, 'steps'>> {
  const t0 = performance.now();
  const rows = await Promise.all(
    reqs.map(
      (r) =>
        new Promise<Row>((resolve, reject) => {
          setTimeout(() => {
            const g = engine.generate(r.promptTokens!, { maxTokens: r.maxNewTokens, ignoreEos: true, ttftSlo: TTFT_SLO, tpotSlo: TPOT_SLO });
            g.result.then((x) => resolve({ ttft: x.stats.ttft, tpot: x.stats.tpot, tokens: x.stats.generatedTokens, end: (performance.now() - t0) / 1000, arrival: r.arrival }), reject);
          }, r.arrival * 1000);
        }),
    ),
  );
  const span = Math.max(...rows.map((r) => r.end)) - Math.min(...reqs.map((r) => r.arrival));
  return { rows, span, ttftMean: summarize(rows, span).ttftMean, offloadMiB: engine.stats().totals.offloadedBytes / 2 ** 20 };
}

/** The simulator on the same requests: the scheduler plans with `cost`, as the engine's
 *  did; the executor's step times come from `timing` (the same cost unless given). */
async function runSim(policy: PolicyName, reqs: Request[], cost: CostModel, pools: { device: number; host: number }, budget: number, timing: CostModel = cost): Promise<RunStats> {
  const scheduler = createScheduler({ policy, cost, blockSize: BLOCK, deviceBlocks: pools.device, hostBlocks: pools.host, maxBatchedTokens: budget, recordTables: false });
  const withSlo = reqs.map((r) => ({ ...r, ttftSlo: TTFT_SLO, tpotSlo: TPOT_SLO }));
  const r = await simulate({ requests: withSlo, scheduler, executor: new SimExecutor(timing) });
  const rows = [...r.collector.all()].map((x) => {
    const n = x.tokenTimes.length;
    return { ttft: x.tokenTimes[0] - x.arrival, tpot: n > 1 ? (x.tokenTimes[n - 1] - x.tokenTimes[0]) / (n - 1) : NaN, tokens: n, end: x.finishedAt ?? 0, arrival: x.arrival };
  });
  return { ...summarize(rows, r.metrics.duration), offloadMiB: scheduler.stats.offloadedBytes / 2 ** 20 };
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
  estimate: '150 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    ctx.progress('loading the model and fitting the cost model to this machine');
    const model = await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: 1 }, { dtype: 'fp32' });
    // Device: 8 requests of 320 tokens' worth of every layer; host: plenty.
    const pools = servingPools(8);
    const { deviceBlocks, hostBlocks } = pools;
    const cal = await calibrateEngineCost(model, { deviceKvBytes: deviceBlocks * BLOCK_BYTES, maxChunk: 256, maxContext: 512 });
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
    const workload = (n: number, rate: number, seed: number) =>
      synthetic({ n, rate, promptLen: [192, 288], outputLen: [16, 48], seed }).map((r, i) => ({ ...r, promptTokens: Int32Array.from({ length: r.promptLen }, (_, j) => (i * 131 + j * 17 + seed) % CONFIG.vocab_size) }));
    const engineFor = (policy: PolicyName, cost: typeof cal.cost, onStep: (s: StepReport) => void) => servingEngine({ policy, pools, maxBatchedTokens: 512, cost, onStep });
    // A calibration run through the engine (baseline, its own requests), for the refit. It
    // spans the regimes the rows run in: requests that each find the engine idle, a light
    // phase and a busy one at 0.9x the estimated capacity; each phase is one engine run. The
    // idle arrivals are for the wake cost: the light phase alone left it to three or four
    // cold steps, fitted anywhere from 1 to 20 ms, and at the lowest rate, where most
    // requests arrive at an idle engine after 100-300 ms, it is a third of a TTFT.
    const calibrationRuns = async (seed: number) => {
      const runs: StepReport[][] = [];
      const idle = workload(ISOLATED, 1, seed).map((r, i) => ({ ...r, arrival: i * ISOLATED_GAP, maxNewTokens: 4 }));
      const cap = capacityOf(cal.cost);
      for (const reqs of [idle, workload(12, 0.3 * cap, seed), workload(24, 0.9 * cap, seed)]) {
        const calSteps: StepReport[] = [];
        const e = await engineFor('baseline', cal.cost, (s) => calSteps.push(s));
        await runEngine(e, reqs);
        await e.close();
        runs.push(calSteps);
      }
      return runs;
    };
    ctx.progress('calibration run through the engine (baseline, its own requests)');
    const fit = fitEngineSteps(cal.cost, await calibrationRuns(99));
    ctx.table(
      `Refit on the engine's own ${fit.steps} steps (host gap between back-to-back steps ${(fit.meanGapSeconds * 1e3).toFixed(2)} ms, included)`,
      [
        ...(['t0', 'perItem', 'perToken', 'perPair', 'perKvToken'] as const).map((k) => ({ constant: k, 'model alone': cal.coef[k], 'engine steps': fit.coef[k] })),
        { constant: `wake: a step after >= ${fit.wake.afterIdleSeconds * 1e3} ms idle (${fit.wake.steps} steps)`, 'engine steps': fit.wake.seconds },
        ...fit.byKind.map((k) => ({ constant: `${k.kind} steps (${k.steps}): measured / fitted`, 'engine steps': k.measured / k.fitted })),
      ],
    );
    const capacity = capacityOf(fit.cost);
    // Below the estimated capacity: past it the queue grows for as long as requests come, so
    // a row's mean TTFT depends on how many it sends, and a few percent of step time moves
    // it by tens of percent; a comparison there measures the run's length, not the model.
    // --full adds one overloaded rate to show that.
    const rates = (ctx.full ? [0.3, 0.6, 0.9, 1.2] : [0.3, 0.6, 0.9]).map((f) => f * capacity);
    const n = ctx.full ? 60 : 32;
    const rows: Record<string, unknown>[] = [];
    let worstTtft = 0;
    let worstTpot = 0;
    let worstOwnTtft = 0;
    let worstOwnTpot = 0;
    let orderAgrees = true;
    const orders: string[] = [];
    // The engines plan with the last refit (the first rate: the one above).
    let plan = fit.cost;
    for (const [ri, rate] of rates.entries()) {
      const reqs = workload(n, rate, 7);
      // Calibration runs take turns with the rows' runs (calibration, baseline, layerkv,
      // calibration, ...): the machine's speed drifts by 10-15% between windows of ten
      // seconds, so a preset measured before the rows and not among them predicts the
      // machine of another minute. Run k of each policy forms a pair with run k of the other.
      const calRuns: StepReport[][] = [];
      const runs: Record<'baseline' | 'layerkv', Run[]> = { baseline: [], layerkv: [] };
      for (let rep = 0; rep < REPS; rep++) {
        ctx.progress(`calibration run ${rep + 1} of ${REPS} at ${rate.toFixed(2)} req/s`);
        calRuns.push(...(await calibrationRuns(100 + 10 * ri + rep)));
        // Within a pair the order alternates too, so neither policy always runs right after
        // the calibration.
        for (const policy of rep % 2 ? (['layerkv', 'baseline'] as const) : (['baseline', 'layerkv'] as const)) {
          ctx.progress(`${policy} at ${rate.toFixed(2)} req/s: engine, run ${rep + 1} of ${REPS}`);
          const steps: StepReport[] = [];
          const engine = await engineFor(policy, plan, (s) => steps.push(s));
          const out = await runEngine(engine, reqs);
          await engine.close();
          runs[policy].push({ ...out, steps });
        }
      }
      // The preset for this rate: the refit on its calibration runs alone.
      const preset = fitEngineSteps(cal.cost, calRuns).cost;
      const res: Record<string, { real: RunStats; sim: RunStats }> = {};
      for (const policy of ['baseline', 'layerkv'] as const) {
        const all = runs[policy];
        // Every request of every run counts once: the mean of REPS x n requests, not one
        // run picked from REPS.
        const real = { ...summarize(all.flatMap((x) => x.rows), all.reduce((a, x) => a + x.span, 0)), offloadMiB: all.reduce((a, x) => a + x.offloadMiB, 0) / REPS };
        const perRun = all.map((x) => x.ttftMean).sort((a, b) => a - b);
        const ratio = percentiles(all.flatMap((x) => x.steps.map((s) => s.seconds / preset.stepTime(s.items)))).median;
        ctx.progress(`${policy} at ${rate.toFixed(2)} req/s: simulator`);
        const sim = await runSim(policy, reqs, plan, { device: deviceBlocks, host: hostBlocks }, 512, preset);
        // The same simulation with the step times of these runs themselves: what is left
        // between it and the engine is the simulator's scheduling dynamics, not the machine's
        // speed drifting since the calibration. Its scheduler still plans with the cost the
        // engine's planned with: LayerKV's admissions and layer placements follow the
        // predicted step times, so planning with the refit would be another schedule.
        const own = await runSim(policy, reqs, plan, { device: deviceBlocks, host: hostBlocks }, 512, fitEngineSteps(cal.cost, all.map((x) => x.steps)).cost);
        res[policy] = { real, sim };
        const r = (a: number, b: number) => (b > 0 ? a / b : NaN);
        rows.push({
          'req/s': rate,
          policy,
          'ttft mean s': real.ttftMean,
          'runs': `${perRun[0].toFixed(3)}-${perRun[REPS - 1].toFixed(3)}`,
          'sim': sim.ttftMean,
          'ttft p50 s': real.ttftP50,
          'sim p50': sim.ttftP50,
          'ttft p99 s': real.ttftP99,
          'sim p99': sim.ttftP99,
          'tpot mean s': real.tpotMean,
          'sim tpot': sim.tpotMean,
          'tpot p99 s': real.tpotP99,
          'sim tpot p99': sim.tpotP99,
          'tok/s': real.tokPerSec,
          'slo %': 100 * real.slo,
          'sim slo %': 100 * sim.slo,
          'offload MiB': real.offloadMiB,
          'sim offload': sim.offloadMiB,
          'step real/fitted': ratio,
          'ttft real/sim': r(real.ttftMean, sim.ttftMean),
          'tpot real/sim': r(real.tpotMean, sim.tpotMean),
          'ttft real/sim own': r(real.ttftMean, own.ttftMean),
          'tpot real/sim own': r(real.tpotMean, own.tpotMean),
        });
        worstTtft = Math.max(worstTtft, Math.abs(r(real.ttftMean, sim.ttftMean) - 1));
        worstTpot = Math.max(worstTpot, Math.abs(r(real.tpotMean, sim.tpotMean) - 1));
        worstOwnTtft = Math.max(worstOwnTtft, Math.abs(r(real.ttftMean, own.ttftMean) - 1));
        worstOwnTpot = Math.max(worstOwnTpot, Math.abs(r(real.tpotMean, own.tpotMean) - 1));
      }
      // Which policy has the lower mean TTFT, with a 5% band counted as a tie.
      const order = (b: number, l: number) => (b > 1.05 * l ? 'layerkv' : l > 1.05 * b ? 'baseline' : 'tie');
      // The engine calls an order only where it holds beyond the runs' noise: over the REPS
      // pairs of runs, the 95% confidence interval (Student's t) of baseline's mean TTFT
      // over LayerKV's, minus one, must clear the 5% band; else the policies tie.
      const rel = runs.baseline.map((b, k) => b.ttftMean / runs.layerkv[k].ttftMean - 1);
      const m = rel.reduce((a, x) => a + x, 0) / REPS;
      const half = (T_975[REPS - 1] * Math.sqrt(rel.reduce((a, x) => a + (x - m) ** 2, 0) / (REPS - 1))) / Math.sqrt(REPS);
      const realOrder = m - half > 0.05 ? 'layerkv' : m + half < -0.05 ? 'baseline' : 'tie';
      const simOrder = order(res.baseline.sim.ttftMean, res.layerkv.sim.ttftMean);
      orders.push(`${rate.toFixed(1)}: ${realOrder}/${simOrder}`);
      if (realOrder !== simOrder) orderAgrees = false;
      plan = preset;
    }
    ctx.table(`Engine (wall clock) vs simulator (same requests and settings; sim: step times from the calibration runs among the rows', own: from the rows' runs; engine: every request of ${REPS} runs); ${n} requests per row, prompts 192-288, outputs 16-48, device ${deviceBlocks} blocks, TTFT SLO ${TTFT_SLO} s, TPOT SLO ${TPOT_SLO} s`, rows);
    ctx.progress('host overhead of issuing a step: 32 layers, 64 decoding sequences');
    const ov = await issueOverhead();
    ctx.table('Host overhead of issuing one step (32 layers, 64 decodes): building the step and the native calls', [{ 'median ms': ov.median * 1e3, 'p90 ms': ov.p90 * 1e3 }]);
    ctx.record('calibration', cal.coef);
    ctx.record('refit', { ...fit.coef, wake: fit.wake });
    return [
      { metric: 'engine vs simulator: worst mean-TTFT deviation', value: `${(100 * worstTtft).toFixed(0)}%`, target: '<= 15%', met: worstTtft <= 0.15 },
      { metric: 'engine vs simulator: worst mean-TPOT deviation', value: `${(100 * worstTpot).toFixed(0)}%`, target: '<= 15%', met: worstTpot <= 0.15 },
      { metric: 'engine vs simulator: same policy order at every rate (mean TTFT; a 5% band a tie, the engine over its paired runs at 95%)', value: `${orderAgrees ? 'yes' : 'no'} (rate: engine/sim better ${orders.join(', ')})`, target: 'yes', met: orderAgrees },
      { metric: "engine vs simulator on the run's own step costs: worst mean TTFT / TPOT deviation", value: `${(100 * worstOwnTtft).toFixed(0)}% / ${(100 * worstOwnTpot).toFixed(0)}%`, target: '<= 15%', met: worstOwnTtft <= 0.15 && worstOwnTpot <= 0.15 },
      { metric: 'host overhead per step (32 layers, 64 sequences), median', value: `${(ov.median * 1e3).toFixed(2)} ms`, target: '<= 1 ms', met: ov.median <= 1e-3 },
    ];
  },
};
