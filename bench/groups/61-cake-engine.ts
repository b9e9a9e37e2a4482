// Cake for real: a stored prompt on the prefix store's disk tier, loaded by the engine on
// this machine's CPU backend at several read caps, against computing it all (compute-only)
// and loading it all (load-only), with the oracle and the simulator's prediction beside
// each cell.
//
// Method:
//   1. A dummy Llama-shaped model (8 layers, 4 KV heads x 64, fp32: 4 MiB of KV per
//      256-token chunk); the cost model is fitted to it by running it (calibrateEngineCost),
//      then scaled to the engine's own steps of the first two computations of the prompt
//      and, before each cell, of every compute-only run so far (fitEngineSteps, keepShape);
//      the engines' schedulers and the simulator plan with that.
//   2. The prompt: 8 chunks of 256 tokens, then a 64-token suffix. An engine computes it
//      once and saves its chunks to a disk store (a temp directory: KVCAKE_BENCH_STORE_DIR,
//      else the OS temp dir; the files sit in the page cache, so the cap is what limits).
//   3. Per-chunk costs measured in this run: compute-only steps are one chunk each (the step
//      budget is the chunk), so step i is chunk i's compute with i chunks before it; a chunk's
//      load is timed alone at each cap (the store's verified read into host blocks, then the
//      host -> device copy).
//   4. The caps put one chunk's load at 1/4 ... 4x the first chunk's compute, so the best
//      split moves from all-load to mostly-compute across the rows.
//   5. Each cell: an engine per mode over the same store with the cap, one warm-up run each,
//      then `reps` rounds in which the modes take turns; TTFT is generate() to the first
//      token (wall clock), median and spread (max - min over median). The oracle's compute
//      steps are the compute-only runs of the same cell. Cake / oracle is the median over
//      rounds of each Cake run over the oracle of its own round (from the compute-only run
//      right after it), so the machine's drift between rounds cancels; the ratio of the
//      medians is beside it.
// The oracle: min over k of max(compute of chunks [0, k), loads of chunks [k, 8)) plus the
// suffix step, and computing everything at k = 8, from the costs measured in step 3: loads
// pipeline a read and a copy per chunk, so loading n chunks costs n x the slower hop plus
// the faster one. The simulator runs the same request through the same scheduler settings,
// its store reading at the cap (or the store's own speed, where that is lower), its steps
// timed by a refit on the cell's compute-only runs.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createBackend } from '../../lib/backend.js';
import { calibrateEngineCost, createEngine, engineFingerprint, fitEngineSteps, modelIdOfDummy, type StepReport } from '../../lib/engine/index.js';
import { loadModel } from '../../lib/model/model.js';
import { createScheduler, type PolicyName } from '../../lib/sched/index.js';
import { simulate } from '../../lib/sim/simulate.js';
import { SimExecutor } from '../../lib/sim/executor.js';
import { openPrefixStore } from '../../lib/store/index.js';
import { percentiles } from '../../lib/metrics/percentiles.js';
import type { CostModel } from '../../lib/cost/cost-model.js';
import type { EngineStoreOptions } from '../../lib/engine/index.js';
import { RedisServer, redisSkipReason } from '../../scripts/redis-server.js';
import { BLOCK, BLOCK_BYTES, CHUNK, CHUNK_BYTES, CONFIG, DEVICE_BLOCKS, HOST_BLOCKS, LAYERS, PROMPT, SEED, STORED, benchPrompt } from '../cake-model.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODES = ['cake', 'compute-only', 'load-only'] as const;
type Mode = (typeof MODES)[number];

const median = (xs: number[]) => percentiles(xs).median;
const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / median(xs);

interface ModeRunner {
  /** One timed run: TTFT, prompt tokens loaded, wall seconds of each step. */
  run(): Promise<{ ttft: number; cached: number; steps: number[] }>;
  close(): Promise<void>;
}

const diskStore = (dir: string, cap: number): EngineStoreOptions => ({ chunkTokens: CHUNK, disk: { dir, capacityBytes: 4 * STORED * CHUNK_BYTES }, memory: false, readBytesPerSecond: cap, log: () => {} });

async function modeRunner(mode: Mode, store: EngineStoreOptions, cost: CostModel, modelId: string, prompt: number[], reports?: StepReport[]): Promise<ModeRunner> {
  let steps: number[] = [];
  const engine = await createEngine({
    model: { config: CONFIG, dummySeed: SEED },
    backend: 'cpu',
    dtype: 'fp32',
    policy: mode,
    deviceKvBytes: DEVICE_BLOCKS * BLOCK_BYTES,
    hostKvBytes: HOST_BLOCKS * BLOCK_BYTES,
    maxBatchedTokens: CHUNK,
    blockSize: BLOCK,
    cost,
    modelId,
    store,
    onStep: (s) => {
      steps.push(s.seconds);
      reports?.push(s);
    },
  });
  const run = async () => {
    steps = [];
    const r = await engine.generate(prompt, { maxTokens: 1, ignoreEos: true }).result;
    // Saves (of a first run) land before anything else is timed.
    while (engine.stats().transfersInFlight > 0) await new Promise((res) => setTimeout(res, 2));
    return { ttft: r.stats.ttft, cached: r.stats.cachedTokens, steps };
  };
  await run(); // warm-up (and, for the first engine, the run that stores the prompt)
  return { run, close: () => engine.close() };
}

/** Seconds of one chunk's load at the cap, timed alone: the verified read into host blocks,
 *  and the host -> device copy. Medians over the stored chunks. */
async function chunkLoadTimes(dir: string, cap: number, modelId: string, prompt: number[]): Promise<{ read: number; h2d: number }> {
  const be = createBackend({ backend: 'cpu' });
  const model = await loadModel({ backend: be, config: CONFIG, dummySeed: SEED }, { dtype: 'fp32' });
  const fp = engineFingerprint(model, modelId);
  model.release();
  const layout = { numKvHeads: CONFIG.num_key_value_heads, headDim: CONFIG.head_dim, blockSize: BLOCK, dtype: 'fp32' as const };
  const nb = LAYERS * (CHUNK / BLOCK);
  const host = be.createPool({ tier: 'host', numBlocks: nb, ...layout });
  const device = be.createPool({ tier: 'device', numBlocks: nb, ...layout });
  const store = await openPrefixStore({ fingerprint: fp, blockSize: BLOCK, chunkTokens: CHUNK, disk: { dir, capacityBytes: 4 * STORED * CHUNK_BYTES }, memory: false, readBytesPerSecond: cap, log: () => {} });
  const blocks = Int32Array.from({ length: nb }, (_, i) => i);
  const pairs = new Int32Array(2 * nb);
  for (let i = 0; i < nb; i++) pairs.set([i, i], 2 * i);
  const reads: number[] = [];
  const copies: number[] = [];
  try {
    for (const key of store.keys(prompt)) {
      const t0 = performance.now();
      const r = await store.load(key, { pool: host, blocks });
      const t1 = performance.now();
      if (!r.ok) throw new Error(`cake-engine: stored chunk did not load (${r.fault}: ${r.message})`);
      await be.copyBlocks(host, device, pairs);
      reads.push((t1 - t0) / 1000);
      copies.push((performance.now() - t1) / 1000);
    }
  } finally {
    await store.close();
    host.release();
    device.release();
  }
  return { read: median(reads), h2d: median(copies) };
}

function oracle(compute: number[], suffix: number, load: { read: number; h2d: number }): { ttft: number; k: number } {
  const slow = Math.max(load.read, load.h2d);
  const fast = Math.min(load.read, load.h2d);
  let best = { ttft: compute.reduce((a, b) => a + b, 0) + suffix, k: STORED };
  let front = 0;
  for (let k = 0; k < STORED; k++) {
    const loads = (STORED - k) * slow + fast;
    const t = Math.max(front, loads) + suffix;
    if (t < best.ttft) best = { ttft: t, k };
    front += compute[k];
  }
  return best;
}

/** The simulator's TTFT for the same request: its scheduler plans with `cost`, as the
 *  engines' did; step times come from `timing`. The request arrives at an idle engine, as
 *  each measured run does (a second after the start, so a wake cost applies). */
async function simTtft(mode: Mode, cost: CostModel, timing: CostModel, bandwidth: number): Promise<number> {
  const scheduler = createScheduler({ policy: mode as PolicyName, cost, blockSize: BLOCK, deviceBlocks: DEVICE_BLOCKS, hostBlocks: HOST_BLOCKS, maxBatchedTokens: CHUNK, recordTables: false, storageBandwidth: bandwidth });
  const prefix = { chunkTokens: CHUNK, chunkHashes: Array.from({ length: STORED }, (_, i) => `c${i}`), storedChunks: STORED };
  const arrival = 1;
  const r = await simulate({ requests: [{ id: 'p', arrival, promptLen: PROMPT, maxNewTokens: 1, prefix }], scheduler, executor: new SimExecutor(timing, { storageBandwidth: bandwidth, storageLatency: 0 }) });
  return [...r.collector.all()][0].tokenTimes[0] - arrival;
}

/** Two processes over one Redis: a child computes the prompt and saves its chunks; this
 *  process then serves it with Cake and with compute-only, taking turns. */
async function twoProcesses(ctx: BenchContext, cost: CostModel, modelId: string, prompt: number[], reps: number): Promise<Headline[]> {
  const why = redisSkipReason();
  if (why) {
    ctx.progress(`two processes over one Redis: skipped (${why})`);
    return [];
  }
  ctx.progress('two processes over one Redis');
  const server = await RedisServer.start();
  try {
    const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'cake-redis-writer.ts');
    await new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', writer, server.url, modelId], { stdio: ['ignore', 'ignore', 'inherit'] });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`cake-engine: the writer process exited ${code}`))));
    });
    const store: EngineStoreOptions = { chunkTokens: CHUNK, redis: { url: server.url }, log: () => {} };
    const cake = await modeRunner('cake', store, cost, modelId, prompt);
    const compute = await modeRunner('compute-only', store, cost, modelId, prompt);
    const t = { cake: [] as number[], compute: [] as number[] };
    let loaded = 0;
    for (let r = 0; r < reps; r++) {
      const c = await cake.run();
      t.cake.push(c.ttft);
      loaded = c.cached / CHUNK;
      t.compute.push((await compute.run()).ttft);
    }
    await cake.close();
    await compute.close();
    const ratio = median(t.cake) / median(t.compute);
    ctx.table(`Two processes over one Redis (loopback, no cap): the other process computed and saved the prompt; this one serves it (median of ${reps}, taking turns)`, [
      { 'cake TTFT s': median(t.cake), 'compute-only TTFT s': median(t.compute), 'chunks loaded': loaded, 'cake / compute-only': ratio, 'spread %': 100 * Math.max(spread(t.cake), spread(t.compute)) },
    ]);
    return [{ metric: "cake-engine: a second process over one Redis, Cake TTFT / compute-only", value: ratio.toFixed(2), target: '< 1 (the prefix is reused)', met: ratio < 1 && loaded > 0 }];
  } finally {
    await server.stop();
  }
}

export const group: BenchGroup = {
  name: 'cake-engine',
  title: `Cake on the engine: a stored ${PROMPT}-token prompt on the disk tier at several read caps, vs compute-only and load-only, with the oracle and the simulator (CPU backend, dummy 8-layer model)`,
  estimate: '90 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const reps = ctx.full ? 7 : 5;
    const root = process.env.KVCAKE_BENCH_STORE_DIR || os.tmpdir();
    const dir = mkdtempSync(path.join(root, 'kvcake-bench-cake-'));
    try {
      ctx.progress('fitting the cost model to this machine');
      const model = await loadModel({ backend: 'cpu', config: CONFIG, dummySeed: SEED }, { dtype: 'fp32' });
      const modelId = modelIdOfDummy(model.config, SEED);
      const cal = await calibrateEngineCost(model, { deviceKvBytes: DEVICE_BLOCKS * BLOCK_BYTES, maxChunk: CHUNK, maxContext: PROMPT + 64 });
      model.release();
      const prompt = benchPrompt();

      ctx.progress('computing the prompt once and storing its chunks');
      const firstSteps: StepReport[] = [];
      const first = await modeRunner('compute-only', diskStore(dir, 0), cal.cost, modelId, prompt, firstSteps);
      const probe = await first.run();
      await first.close();
      if (probe.steps.length !== STORED + 1) throw new Error(`cake-engine: compute-only took ${probe.steps.length} steps, expected ${STORED + 1}`);
      // The step costs the engines plan with: the model-alone fit's shape, scaled to the
      // engine's own steps of these computations of the prompt and, before each cell, of
      // every compute-only run so far (fitEngineSteps, keepShape), so the level follows the
      // machine's speed. A free refit cannot be trusted here: every step is a 256-token
      // chunk or the suffix, too alike to tell the per-step cost from the attention's, and
      // it put up to 30% too little on the first chunks and too much on the suffix, which
      // moved Cake's split by a chunk.
      const computeRuns: StepReport[][] = [firstSteps];
      const refit = () => fitEngineSteps(cal.cost, computeRuns, { keepShape: true }).cost;
      let cost = refit();

      // The store's own speed without a cap: a cap above it does not limit, the store does.
      const raw = CHUNK_BYTES / (await chunkLoadTimes(dir, 0, modelId, prompt)).read;
      const rows: Record<string, unknown>[] = [];
      let worstOracle = 0;
      let worstSingle = 0;
      let singleMet = true;
      let worstSim = 0;
      let lastCompute: number[] = [];
      let lastSuffix = 0;
      for (const f of [0.25, 0.5, 1, 2, 4]) {
        const cap = CHUNK_BYTES / (f * probe.steps[0]);
        ctx.progress(`cap ${(cap / 1e6).toFixed(0)} MB/s (a chunk's load ${f}x the first chunk's compute)`);
        const load = await chunkLoadTimes(dir, cap, modelId, prompt);
        // The three modes take turns, so a drift in the machine's speed hits them alike.
        const runners = {} as Record<Mode, ModeRunner>;
        const computeReports: StepReport[] = [];
        for (const m of MODES) runners[m] = await modeRunner(m, diskStore(dir, cap), cost, modelId, prompt, m === 'compute-only' ? computeReports : undefined);
        const ttfts = { cake: [] as number[], 'compute-only': [] as number[], 'load-only': [] as number[] };
        const stepRuns: number[][] = [];
        // Cake over the oracle of the same round: that round's compute-only steps, run right
        // after it, so the machine's drift between rounds cancels out of the ratio.
        const paired: number[] = [];
        let cakeLoaded = 0;
        for (let r = 0; r < reps; r++) {
          for (const m of MODES) {
            const x = await runners[m].run();
            ttfts[m].push(x.ttft);
            if (m === 'compute-only') {
              stepRuns.push(x.steps);
              paired.push(ttfts.cake[r] / oracle(x.steps.slice(0, STORED), x.steps[STORED], load).ttft);
            }
            if (m === 'cake') cakeLoaded = x.cached / CHUNK;
          }
        }
        for (const m of MODES) await runners[m].close();
        const compute = Array.from({ length: STORED }, (_, i) => median(stepRuns.map((st) => st[i])));
        const suffix = median(stepRuns.map((st) => st[STORED]));
        lastCompute = compute;
        lastSuffix = suffix;
        const cake = { ttft: ttfts.cake };
        const computeOnly = { ttft: ttfts['compute-only'] };
        const loadOnly = { ttft: ttfts['load-only'] };
        const o = oracle(compute, suffix, load);
        const t = { cake: median(cake.ttft), 'compute-only': median(computeOnly.ttft), 'load-only': median(loadOnly.ttft) };
        const best = Math.min(t['compute-only'], t['load-only']);
        const bestRuns = t['compute-only'] <= t['load-only'] ? computeOnly.ttft : loadOnly.ttft;
        const noise = Math.max(spread(cake.ttft), spread(bestRuns));
        // The simulator: reads pipelined at the cap (the bucket, not each read's own fixed
        // cost, sets the pace of reads issued together), and the step times of this cell's
        // compute-only runs, so the machine's drift since the first fit is not in the gap.
        const bandwidth = Math.min(cap, raw);
        const timing = fitEngineSteps(cal.cost, computeReports, { keepShape: true }).cost;
        computeRuns.push(computeReports);
        const sim = {} as Record<Mode, number>;
        for (const m of MODES) sim[m] = await simTtft(m, cost, timing, bandwidth);
        const pairedRatio = median(paired);
        worstOracle = Math.max(worstOracle, pairedRatio);
        worstSingle = Math.max(worstSingle, t.cake / best);
        if (t.cake > best * (1 + noise)) singleMet = false;
        worstSim = Math.max(worstSim, Math.abs(sim.cake / t.cake - 1));
        rows.push({
          'cap MB/s': cap / 1e6,
          'load/compute': f,
          'read ms': load.read * 1e3,
          'h2d ms': load.h2d * 1e3,
          'cake s': t.cake,
          'compute-only s': t['compute-only'],
          'load-only s': t['load-only'],
          'oracle s': o.ttft,
          'oracle k': o.k,
          'cake loaded': cakeLoaded,
          'cake/oracle': t.cake / o.ttft,
          'cake/oracle paired': pairedRatio,
          'paired range': `${Math.min(...paired).toFixed(2)}-${Math.max(...paired).toFixed(2)}`,
          'cake/best single': t.cake / best,
          'spread %': 100 * noise,
          'sim cake s': sim.cake,
          'sim compute s': sim['compute-only'],
          'sim load s': sim['load-only'],
          'sim/real cake': sim.cake / t.cake,
        });
        cost = refit();
      }
      ctx.table(
        `TTFT per cap, median of ${reps} runs per mode after a warm-up, modes taking turns (spread: max - min over median, of cake and the better single mode); compute steps of one chunk (last cap): ${lastCompute.map((c) => (c * 1e3).toFixed(0)).join(', ')} ms, suffix ${(lastSuffix * 1e3).toFixed(0)} ms; a chunk is ${(CHUNK_BYTES / 2 ** 20).toFixed(0)} MiB`,
        rows,
      );
      ctx.record('compute', { steps: lastCompute, suffix: lastSuffix });
      const shared = await twoProcesses(ctx, cost, modelId, prompt, reps);
      return [
        ...shared,
        { metric: 'cake-engine: worst Cake / oracle TTFT over caps (median over rounds of Cake / the oracle of its round)', value: worstOracle.toFixed(2), target: '<= 1.10', met: worstOracle <= 1.1 },
        { metric: 'cake-engine: worst Cake / better single mode', value: worstSingle.toFixed(2), target: '<= 1.00 within the runs\' spread', met: singleMet },
        { metric: 'cake-engine: worst simulator vs engine deviation (Cake TTFT)', value: `${(100 * worstSim).toFixed(0)}%`, target: '<= 15%', met: worstSim <= 0.15 },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
