// Cake: compute-or-load of a stored 16K prompt prefix, against computing it all and loading it
// all, over storage bandwidth x GPU compute share x model, with the oracle (best single split,
// min over k) beside each cell. Every cell runs one request through the real scheduler core
// and the simulated executor (createScheduler + simulate): the tracker is driven exactly as
// in serving, with loads issued at step boundaries and compute from the step's token budget.
//
// The prompt: 32 stored chunks of 512 tokens plus a 128-token uncached suffix. The oracle's
// per-chunk compute is what the front pays for that chunk in budget-sized steps from token 0;
// its loads are what a chunk costs on its way to the device: a read from the store into host
// landing blocks, then a PCIe copy, pipelined over chunks (each chunk costs the slower hop,
// and the last one's faster hop comes on top); the suffix is one step after the prefix.
//
// Beside it, labelled "paper greedy", the tracker without cost estimates (the paper's meeting
// rule: compute toward the loads, load down to the front, 2 loads in flight) in this file's
// own one-request simulation, which steps as the scheduler does for a lone request except
// for two things done the paper's way, to give the greedy rule its fair chance: compute goes
// one chunk per step, and the next load is issued the moment one lands (the paper's I/O
// thread) rather than at the next step boundary.
// Should the scheduler core fail to load, every column comes from that simulation and the
// table says so.
//
// Then a busy-server table: the same request arriving while 16 others decode, so Cake's
// compute gets only the budget they leave and its estimates (the range alone) understate the
// real steps. That table has no oracle (the front's speed depends on the neighbours); it
// compares Cake with the single modes only.
//
// And a concurrent-requests table: several such prefix requests arriving 50 ms apart, mean
// TTFT. With more than one in flight the scheduler plans all their splits at once
// (lib/sched/cake/planner.ts: fronts FCFS on the GPU, loads FIFO on the store, mean TTFT).
//
// Default suite: the whole one-request grid (30 cells x 4 runs), the busy server for
// Llama-3.1-8B at 7/25/100 Gbps, and 4 concurrent requests on two models at 100% compute
// (about 10 s). --full adds 256-token chunks and a 32K prompt to the grid, runs the busy
// server over the whole grid, and 2/4/8 concurrent requests over models x shares.
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { deployment, type ModelName, type GpuName } from '../../lib/cost/presets.js';
import type { RooflineCost as CostModel } from '../../lib/cost/roofline.js';
import { CakeTracker, type PrefixMode } from '../../lib/sched/cake/tracker.js';
import { cakeOracle } from '../../lib/sched/cake/oracle.js';
import type { Request } from '../../lib/contract/request.js';

const BANDWIDTHS_GBPS = [7, 25, 32, 56, 100];
const SHARES = [1, 0.125];
const MODELS: [ModelName, GpuName][] = [
  ['LongAlpaca-7B', 'A100-80G'],
  ['Llama-3.1-8B', 'H100-SXM'],
  ['Llama-3.1-70B', 'H100-SXM'],
];
/** The scheduler core's default per-step token budget. */
const BUDGET = 4096;
const STORAGE_LATENCY = 100e-6;
const MODES = ['cake', 'compute-only', 'load-only'] as const;
type Mode = (typeof MODES)[number];

/** One table row comparing the three modes' TTFTs in a cell (busy and concurrent tables). */
function modesRow(model: string, share: number, gbps: number, t: Record<Mode, number>, ratio: number): Record<string, unknown> {
  return {
    model,
    share: `${share * 100}%`,
    Gbps: gbps,
    'cake ms': Number((t.cake * 1000).toFixed(1)),
    'compute-only ms': Number((t['compute-only'] * 1000).toFixed(1)),
    'load-only ms': Number((t['load-only'] * 1000).toFixed(1)),
    'cake / better': Number(ratio.toFixed(3)),
  };
}

interface Shape {
  promptTokens: number;
  chunkTokens: number;
  suffixTokens: number;
}

function prefixRequest(shape: Shape): Request {
  const stored = shape.promptTokens / shape.chunkTokens;
  return {
    id: 'r0',
    arrival: 0,
    promptLen: shape.promptTokens + shape.suffixTokens,
    maxNewTokens: 1,
    prefix: {
      chunkTokens: shape.chunkTokens,
      chunkHashes: Array.from({ length: stored }, (_, i) => `chunk-${i}`),
      storedChunks: stored,
    },
  };
}

/** Seconds the front spends on [0, end) in budget-sized steps (one request alone). */
function frontTime(cost: CostModel, end: number): number {
  let t = 0;
  for (let s = 0; s < end; s += BUDGET) t += cost.prefillChunkTime(Math.min(BUDGET, end - s), s);
  return t;
}

/** A chunk's two hops: the store's read and the PCIe copy to the device. */
function chunkHops(cost: CostModel, C: number, bandwidth: number): { read: number; copy: number } {
  const bytes = cost.kvBytes(C);
  return { read: bytes / bandwidth + STORAGE_LATENCY, copy: cost.transferTime(bytes, 'h2d') };
}

function oracle(cost: CostModel, shape: Shape, bandwidth: number) {
  const C = shape.chunkTokens;
  const n = shape.promptTokens / C;
  const { read, copy } = chunkHops(cost, C, bandwidth);
  const suffix = cost.prefillChunkTime(shape.suffixTokens, shape.promptTokens);
  const load = (i: number) => Math.max(read, copy) + (i === n - 1 ? Math.min(read, copy) : 0);
  return cakeOracle((i) => frontTime(cost, (i + 1) * C) - frontTime(cost, i * C), load, n, suffix);
}

interface RunResult {
  ttft: number;
  loadedTokens: number;
}
type Runner = (mode: Mode, dep: ReturnType<typeof deployment>, shape: Shape, bandwidth: number) => Promise<RunResult>;

/** The whole path: scheduler core + simulated executor; null if the core cannot be loaded. */
async function schedulerRunner(): Promise<Runner | null> {
  try {
    const { createScheduler } = await import('../../lib/sched/index.js');
    const { simulate } = await import('../../lib/sim/simulate.js');
    return async (mode, dep, shape, bandwidth) => {
      const scheduler = createScheduler({ policy: mode, cost: dep.cost, storageBandwidth: bandwidth, maxBatchedTokens: BUDGET, recordTables: false });
      const r = await simulate({
        requests: [prefixRequest(shape)],
        scheduler,
        deployment: dep,
        executorOptions: { storageBandwidth: bandwidth, storageLatency: STORAGE_LATENCY },
      });
      if (r.metrics.completed !== 1) throw new Error(`${mode}: the request did not complete (${JSON.stringify(r.rejected)})`);
      return { ttft: r.metrics.ttft.mean, loadedTokens: scheduler.stats.loadedTokens };
    };
  } catch {
    return null;
  }
}

/** One request alone, stepped as the scheduler core steps it: loads asked for first, then
 *  compute within the budget; loads run in order on the storage channel and are reported at
 *  the end of the step (or idle wait) in which they land. */
function oneRequest(mode: PrefixMode, withEstimates: boolean, cost: CostModel, shape: Shape, bandwidth: number, paperWay = false): RunResult {
  const budget = paperWay ? shape.chunkTokens : BUDGET;
  const C = shape.chunkTokens;
  const { read, copy } = chunkHops(cost, C, bandwidth);
  const load = Math.max(read, copy);
  const t = new CakeTracker({
    promptLen: shape.promptTokens + shape.suffixTokens,
    chunkTokens: C,
    storedChunks: shape.promptTokens / C,
    mode,
    estimates: withEstimates ? { compute: (s, n) => cost.prefillChunkTime(n, s), load: () => load } : undefined,
  });
  const pending: { chunk: number; at: number }[] = [];
  let channelFree = 0;
  let now = 0;
  const issue = (at: number) => {
    for (let c = t.nextLoad(at); c >= 0; c = t.nextLoad(at)) {
      channelFree = Math.max(channelFree, at) + load;
      pending.push({ chunk: c, at: channelFree + Math.min(read, copy) });
    }
  };
  const land = (until: number) => {
    for (;;) {
      const p = pending.filter((q) => q.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!p) return;
      pending.splice(pending.indexOf(p), 1);
      t.onLoaded(p.chunk, p.at);
      if (paperWay) issue(p.at);
    }
  };
  while (!t.done) {
    issue(now);
    const r = t.nextCompute(budget, now);
    if (r) {
      const end = now + cost.prefillChunkTime(r.tokens, r.start);
      land(end);
      t.onComputed(r.start, r.tokens);
      now = end;
    } else {
      if (pending.length === 0) throw new Error(`one-request simulation stuck in phase ${t.phase}`);
      now = Math.min(...pending.map((p) => p.at));
      land(now);
    }
  }
  return { ttft: now, loadedTokens: t.loadedTokens };
}

const ownRunner: Runner = async (mode, dep, shape, bandwidth) => oneRequest(mode, true, dep.cost, shape, bandwidth);

interface Cell {
  model: string;
  share: number;
  gbps: number;
  chunk: number;
  prompt: number;
  oracleSplit: number;
  oracle: number;
  cake: number;
  greedy: number;
  computeOnly: number;
  loadOnly: number;
  cakeLoadedChunks: number;
}

async function runGrid(ctx: BenchContext, shapes: Shape[], run: Runner): Promise<Cell[]> {
  const cells: Cell[] = [];
  for (const shape of shapes) {
    for (const [modelName, gpuName] of MODELS) {
      for (const share of SHARES) {
        const dep = deployment(modelName, gpuName, { computeShare: share });
        ctx.progress(`${modelName} on ${gpuName}, ${share * 100}% compute, ${shape.promptTokens / 1024}K prompt, ${shape.chunkTokens}-token chunks`);
        for (const gbps of BANDWIDTHS_GBPS) {
          const bw = (gbps * 1e9) / 8;
          const o = oracle(dep.cost, shape, bw);
          const res = {} as Record<Mode, { ttft: number; loadedTokens: number }>;
          for (const mode of MODES) res[mode] = await run(mode, dep, shape, bw);
          cells.push({
            model: `${modelName} / ${dep.gpu.name}`,
            share,
            gbps,
            chunk: shape.chunkTokens,
            prompt: shape.promptTokens + shape.suffixTokens,
            oracleSplit: o.split,
            oracle: o.time,
            cake: res.cake.ttft,
            greedy: oneRequest('cake', false, dep.cost, shape, bw, true).ttft,
            computeOnly: res['compute-only'].ttft,
            loadOnly: res['load-only'].ttft,
            cakeLoadedChunks: res.cake.loadedTokens / shape.chunkTokens,
          });
        }
      }
    }
  }
  return cells;
}

const NEIGHBOURS = 16;

/** TTFT of the prefix request arriving at 0.5 s among NEIGHBOURS decoding requests. */
async function busyTtft(mode: Mode, dep: ReturnType<typeof deployment>, shape: Shape, bandwidth: number): Promise<number> {
  const { createScheduler } = await import('../../lib/sched/index.js');
  const { simulate } = await import('../../lib/sim/simulate.js');
  const arrival = 0.5;
  const reqs: Request[] = Array.from({ length: NEIGHBOURS }, (_, i) => ({ id: `n${i}`, arrival: 0, promptLen: 256, maxNewTokens: 1500 }));
  reqs.push({ ...prefixRequest(shape), arrival });
  const scheduler = createScheduler({ policy: mode, cost: dep.cost, storageBandwidth: bandwidth, maxBatchedTokens: BUDGET, recordTables: false });
  const r = await simulate({ requests: reqs, scheduler, deployment: dep, executorOptions: { storageBandwidth: bandwidth, storageLatency: STORAGE_LATENCY }, keepEvents: true });
  const first = r.events!.find((e) => e.seq === 'r0' && e.kind === 'first-token');
  if (!first) throw new Error(`${mode}: the prefix request got no first token on the busy server`);
  return first.at - arrival;
}

async function busyTable(ctx: BenchContext, shape: Shape, models: [ModelName, GpuName][], bandwidths: number[]): Promise<Headline> {
  const rows: Record<string, unknown>[] = [];
  let losses = 0;
  let worst = 0;
  for (const [modelName, gpuName] of models) {
    for (const share of SHARES) {
      const dep = deployment(modelName, gpuName, { computeShare: share });
      ctx.progress(`busy server: ${modelName}, ${share * 100}% compute`);
      for (const gbps of bandwidths) {
        const bw = (gbps * 1e9) / 8;
        const t = {} as Record<Mode, number>;
        for (const mode of MODES) t[mode] = await busyTtft(mode, dep, shape, bw);
        const better = Math.min(t['compute-only'], t['load-only']);
        const ratio = t.cake / better;
        worst = Math.max(worst, ratio);
        if (ratio > 1 + 1e-9) losses++;
        rows.push(modesRow(`${modelName} / ${dep.gpu.name}`, share, gbps, t, ratio));
      }
    }
  }
  ctx.table(`Busy server: TTFT of the prefix request arriving among ${NEIGHBOURS} decoding requests (scheduler core + simulated executor)`, rows);
  return { metric: 'busy server: worst Cake / better single mode, cells losing', value: `${worst.toFixed(3)}, ${losses} of ${rows.length}` };
}

/** Mean TTFT of `n` prefix requests (distinct prefixes) arriving 50 ms apart. */
async function concurrentTtft(mode: Mode, dep: ReturnType<typeof deployment>, shape: Shape, bandwidth: number, n: number): Promise<number> {
  const { createScheduler } = await import('../../lib/sched/index.js');
  const { simulate } = await import('../../lib/sim/simulate.js');
  const base = prefixRequest(shape);
  const reqs: Request[] = Array.from({ length: n }, (_, i) => ({
    ...base,
    id: `p${i}`,
    arrival: i * 0.05,
    prefix: { ...base.prefix!, chunkHashes: base.prefix!.chunkHashes.map((h) => `p${i}-${h}`) },
  }));
  const scheduler = createScheduler({ policy: mode, cost: dep.cost, storageBandwidth: bandwidth, maxBatchedTokens: BUDGET, recordTables: false });
  const r = await simulate({ requests: reqs, scheduler, deployment: dep, executorOptions: { storageBandwidth: bandwidth, storageLatency: STORAGE_LATENCY } });
  if (r.metrics.completed !== n) throw new Error(`${mode}: ${r.metrics.completed} of ${n} concurrent prefix requests completed`);
  return r.metrics.ttft.mean;
}

async function concurrentTable(ctx: BenchContext, shape: Shape, counts: number[], models: [ModelName, GpuName][], shares: number[], bandwidths: number[]): Promise<Headline[]> {
  const rows: Record<string, unknown>[] = [];
  let losses = 0;
  let worst = 0;
  let vsCompute = 0;
  let vsLoad = 0;
  for (const n of counts) {
    for (const [modelName, gpuName] of models) {
      for (const share of shares) {
        const dep = deployment(modelName, gpuName, { computeShare: share });
        ctx.progress(`${n} concurrent prefix requests: ${modelName}, ${share * 100}% compute`);
        for (const gbps of bandwidths) {
          const bw = (gbps * 1e9) / 8;
          const t = {} as Record<Mode, number>;
          for (const mode of MODES) t[mode] = await concurrentTtft(mode, dep, shape, bw, n);
          const ratio = t.cake / Math.min(t['compute-only'], t['load-only']);
          worst = Math.max(worst, ratio);
          vsCompute += t['compute-only'] / t.cake;
          vsLoad += t['load-only'] / t.cake;
          if (ratio > 1 + 1e-9) losses++;
          rows.push({ requests: n, ...modesRow(`${modelName} / ${dep.gpu.name}`, share, gbps, t, ratio) });
        }
      }
    }
  }
  ctx.table('Concurrent prefix requests, 50 ms apart: mean TTFT (scheduler core + simulated executor; splits from the joint planner)', rows);
  return [
    {
      metric: 'concurrent prefix requests: worst Cake / better single mode, cells losing',
      value: `${worst.toFixed(3)}, ${losses} of ${rows.length}`,
      target: '<= 1 in every cell',
      met: losses === 0,
    },
    { metric: 'concurrent prefix requests: mean TTFT speedup over compute-only / load-only', value: `${(vsCompute / rows.length).toFixed(2)}x / ${(vsLoad / rows.length).toFixed(2)}x` },
  ];
}

export const group: BenchGroup = {
  name: 'cake',
  title: 'Cake: compute-or-load TTFT vs compute-only, load-only and the oracle (scheduler + simulated executor)',
  estimate: '10 s',
  async run(ctx) {
    const shapes: Shape[] = [{ promptTokens: 16384, chunkTokens: 512, suffixTokens: 128 }];
    if (ctx.full) {
      shapes.push({ promptTokens: 16384, chunkTokens: 256, suffixTokens: 128 }, { promptTokens: 32768, chunkTokens: 512, suffixTokens: 128 });
    }
    const viaScheduler = await schedulerRunner();
    if (!viaScheduler) ctx.progress('scheduler core not loadable: every column comes from the one-request simulation in this file');
    const cells = await runGrid(ctx, shapes, viaScheduler ?? ownRunner);
    const path = viaScheduler ? 'scheduler core + simulated executor' : 'ONE-REQUEST SIMULATION IN THIS FILE (scheduler core not loadable)';
    const ms = (s: number) => Number((s * 1000).toFixed(1));
    const rows = cells.map((c) => {
      const better = Math.min(c.computeOnly, c.loadOnly);
      return {
        model: c.model,
        share: `${c.share * 100}%`,
        Gbps: c.gbps,
        ...(ctx.full ? { prompt: c.prompt, chunk: c.chunk } : {}),
        'oracle ms': ms(c.oracle),
        'k*': c.oracleSplit,
        'cake ms': ms(c.cake),
        'loaded': c.cakeLoadedChunks,
        'compute-only ms': ms(c.computeOnly),
        'load-only ms': ms(c.loadOnly),
        'cake/oracle': Number((c.cake / c.oracle).toFixed(3)),
        'greedy/oracle': Number((c.greedy / c.oracle).toFixed(3)),
        'vs compute': `${(c.computeOnly / c.cake).toFixed(2)}x`,
        'vs load': `${(c.loadOnly / c.cake).toFixed(2)}x`,
        'cake loses': c.cake > better * (1 + 1e-9) ? 'YES' : '',
      };
    });
    ctx.table(`TTFT of one request with a stored prefix, ${path} (k* = oracle split: chunks computed; loaded = chunks Cake loaded; greedy = paper's meeting rule, one-request simulation)`, rows);
    ctx.record('path', path);
    ctx.record('cells', cells);

    const worst = cells.reduce((w, c) => (c.cake / c.oracle > w.cake / w.oracle ? c : w));
    const worstRatio = worst.cake / worst.oracle;
    const losses = cells.filter((c) => c.cake > Math.min(c.computeOnly, c.loadOnly) * (1 + 1e-9));
    const speedupCompute = cells.reduce((a, c) => a + c.computeOnly / c.cake, 0) / cells.length;
    const speedupLoad = cells.reduce((a, c) => a + c.loadOnly / c.cake, 0) / cells.length;
    const heads: Headline[] = [
      {
        metric: 'worst Cake / oracle TTFT',
        value: `${worstRatio.toFixed(3)} (${worst.model}, ${worst.share * 100}%, ${worst.gbps} Gbps)`,
        target: '<= 1.05 in every cell',
        met: worstRatio <= 1.05,
      },
      {
        metric: 'cells where Cake is slower than the better of compute-only and load-only',
        value: `${losses.length} of ${cells.length}${losses.length ? ': ' + losses.map((c) => `${c.model} ${c.share * 100}% ${c.gbps} Gbps`).join('; ') : ''}`,
        target: '0',
        met: losses.length === 0,
      },
      { metric: 'mean TTFT speedup over compute-only', value: `${speedupCompute.toFixed(2)}x` },
      {
        metric: 'paper greedy meeting: worst ratio to oracle, cells losing to the better single mode',
        value: `${Math.max(...cells.map((c) => c.greedy / c.oracle)).toFixed(3)}, ${cells.filter((c) => c.greedy > Math.min(c.computeOnly, c.loadOnly) * (1 + 1e-9)).length} of ${cells.length}`,
      },
      { metric: 'mean TTFT speedup over load-only', value: `${speedupLoad.toFixed(2)}x` },
    ];
    if (viaScheduler) {
      heads.push(ctx.full ? await busyTable(ctx, shapes[0], MODELS, BANDWIDTHS_GBPS) : await busyTable(ctx, shapes[0], [MODELS[1]], [7, 25, 100]));
      heads.push(
        ...(ctx.full
          ? await concurrentTable(ctx, shapes[0], [2, 4, 8], MODELS, SHARES, [7, 25, 100])
          : await concurrentTable(ctx, shapes[0], [4], [MODELS[0], MODELS[1]], [1], [7, 25, 100])),
      );
    }
    return heads;
  },
};
