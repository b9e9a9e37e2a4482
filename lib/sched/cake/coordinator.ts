// The prefix coordinator: requests whose prompt prefix KV sits in the prefix store, under one
// of three modes (compute-only: recompute it; load-only: load it whole; cake: compute from
// the front while loading from the back). One CakeTracker per request decides what to load
// and compute; this class turns that into the plan's loads and compute, keeps the store's
// queue, and plans several requests jointly (planner.ts).
//
// A stored chunk reaches the device in two hops:
//   'prefix-read'  (storage channel): the store's bytes land in host landing blocks, every
//                  layer's K and V for the chunk's tokens;
//   'prefix-load'  (h2d, after the read): landing blocks to the request's device blocks of the
//                  chunk's positions. The landing blocks go back when it completes.
// The tracker hears of a chunk when its prefix-load completes. A read that misses or fails
// verification fails its load too (the contract's `after`); the tracker then computes the
// chunk (a hole), and the chunk is saved again once computed.
//
// Compute gets only the token budget left after decodes and ordinary prefills; loads are
// issued regardless. With several prefix requests in flight, a step's length matters as much
// as its order (a request's first token comes at the end of the step with its last compute):
//   - a suffix that is ready (prefix KV in place) runs before any front: short, ends a TTFT;
//   - a step that ends TTFTs carries no front beside them;
//   - a front step ends no later than the next waiting request's loads are expected to land.
// The joint planner assumes exactly this. With one request these rules change nothing.
import type { ChunkLanding, StepPlan, StepResult } from '../../contract/plan.js';
import type { SchedCore } from '../core.js';
import type { SeqState } from '../request-state.js';
import type { StepBuilder } from '../step-builder.js';
import { sizeToLimit } from '../policy/slo.js';
import { planCake, type FixedJob, type PlanJob } from './planner.js';
import { LoadSlots } from './load-slots.js';
import { CakeTracker, type PrefixMode } from './tracker.js';

export interface PrefixOptions {
  mode: PrefixMode;
  /** Prefix loads in flight per request (default: the tracker's). */
  maxLoadsInFlight?: number;
  /** Read bandwidth the split estimates use, bytes/s: a number, or a function for a measured
   *  moving estimate (default: the cost model's storage channel). */
  storageBandwidth?: number | (() => number);
  /** Pins every Cake request's split at chunk k (clamped to its stored chunks): chunks
   *  [0, k) computed, the rest loaded. For tests and ablations; default: planned. */
  fixedSplit?: number;
  /** A stored chunk of `s` failed to load and is computed instead. */
  onLoadFailed?: (s: SeqState, chunk: number) => void;
}

interface PrefixSeq {
  tracker: CakeTracker;
  /** The joint planner's last split for this request (a start for the next search). */
  split?: number;
}

export class PrefixCoordinator {
  readonly mode: PrefixMode;
  private readonly core: SchedCore;
  private readonly maxLoadsInFlight: number | undefined;
  private readonly storageBandwidth: () => number;
  private readonly seqs = new Map<SeqState, PrefixSeq>();
  /** In-flight prefix-loads by transfer id, their requests, and when they are expected to
   *  land: the store serves every request's reads on one channel. */
  private readonly loads = new Map<number, SeqState>();
  private readonly slots = new LoadSlots<number>();
  /** Real seconds of steps that ran fronts over the cost model's seconds for those ranges
   *  alone (EWMA of both): decodes and ordinary prefills share those steps and take budget
   *  first, so fronts run slower than the model says; the joint planner scales by this. */
  private frontActual = 0;
  private frontEstimated = 0;
  private readonly fixedSplit: number | undefined;
  private readonly onLoadFailed: ((s: SeqState, chunk: number) => void) | undefined;

  constructor(core: SchedCore, opts: PrefixOptions) {
    this.core = core;
    this.mode = opts.mode;
    this.maxLoadsInFlight = opts.maxLoadsInFlight;
    const bw = opts.storageBandwidth;
    if (typeof bw === 'number' && !(bw > 0 && Number.isFinite(bw))) throw new RangeError(`Scheduler: storageBandwidth must be a positive finite bytes/s, got ${bw}`);
    this.storageBandwidth = typeof bw === 'function' ? bw : typeof bw === 'number' ? () => bw : () => core.cost.channel('storage').bandwidth;
    const k = opts.fixedSplit;
    if (k !== undefined && !(Number.isInteger(k) && k >= 0)) throw new RangeError(`Scheduler: fixedSplit must be an integer >= 0, got ${k}`);
    this.fixedSplit = k;
    this.onLoadFailed = opts.onLoadFailed;
  }

  /** Whether `s`'s prefill goes through this coordinator: it has a stored prefix, and (to
   *  load any of it) the host pool can hold one chunk's landing blocks. A request whose
   *  chunks can never land is an ordinary prefill. */
  uses(s: SeqState): boolean {
    const p = s.req.prefix;
    if (!p || p.storedChunks === 0) return false;
    return this.mode === 'compute-only' || this.landingBlocks(p.chunkTokens) <= this.core.kv.host.numBlocks;
  }

  private landingBlocks(chunkTokens: number): number {
    return this.core.numLayers * (chunkTokens / this.core.blockSize);
  }

  /** Whether `s` is prefilling under this coordinator now. */
  owns(s: SeqState): boolean {
    return this.seqs.has(s);
  }

  /** `s` was admitted with every layer on the device. */
  attach(s: SeqState): void {
    const p = s.req.prefix!;
    const tracker = new CakeTracker({
        promptLen: s.target,
        chunkTokens: p.chunkTokens,
        storedChunks: p.storedChunks,
        mode: this.mode,
        maxLoadsInFlight: this.maxLoadsInFlight,
        estimates: {
          compute: (start, tokens) => this.core.cost.prefillChunkTime(tokens, start),
          load: () => this.chunkLoadTime(s),
          stepOverhead: (now) => this.wakeSeconds(now),
        },
      });
    if (this.mode === 'cake' && this.fixedSplit !== undefined) tracker.setSplit(Math.min(this.fixedSplit, p.storedChunks));
    this.seqs.set(s, { tracker });
  }

  /** `s` let go of its KV (preempted, aborted): a recompute starts over without the store. */
  detach(s: SeqState): void {
    this.seqs.delete(s);
  }

  /** The cost model's wake cost for a step starting at `now`, or 0 when compute ran lately. */
  private wakeSeconds(now: number): number {
    const w = this.core.cost.wake;
    return w !== undefined && now - this.core.lastComputeEnd >= w.afterIdleSeconds ? w.seconds : 0;
  }

  /** Bytes of one chunk: every layer's blocks for its tokens. */
  private chunkBytes(s: SeqState): number {
    return this.core.numLayers * (s.req.prefix!.chunkTokens / this.core.blockSize) * this.core.blockBytes;
  }

  /** Store then PCIe, pipelined over chunks: each chunk costs the slower hop. */
  private chunkLoadTime(s: SeqState): number {
    const bytes = this.chunkBytes(s);
    const st = this.core.cost.channel('storage');
    return Math.max(bytes / this.storageBandwidth() + st.latency, this.core.cost.transferTime(bytes, 'h2d'));
  }

  // ---- planning -----------------------------------------------------------------------

  schedule(now: number, b: StepBuilder): void {
    if (this.seqs.size === 0) return;
    const live: SeqState[] = [];
    for (const s of this.core.running) {
      const p = this.seqs.get(s);
      if (p && !p.tracker.done) live.push(s);
    }
    if (this.mode === 'cake') this.planJointly(now, live);
    for (const s of live) {
      // No room to land a chunk and nothing in flight: compute the rest rather than wait on
      // host blocks that other requests may hold for long (swapped, offloaded).
      const t = this.seqs.get(s)!.tracker;
      if (this.mode === 'cake' && this.fixedSplit === undefined && t.loadsInFlight === 0 && !this.core.kv.host.canAllocate(this.landingBlocks(t.chunkTokens))) t.setSplit(t.storedChunks);
      this.issueLoads(s, b, now);
    }
    if (b.budget === 0 || live.length === 0) return;
    const push = (s: SeqState, r: { start: number; tokens: number }) => b.add(this.core.prefillItem(s, r.tokens, r.start));
    if (this.mode !== 'cake') {
      // The single-mode baselines serve their requests in admission order, nothing more.
      for (const s of live) {
        if (b.budget === 0) break;
        const r = this.seqs.get(s)!.tracker.nextCompute(b.budget, now);
        if (r) push(s, r);
      }
      return;
    }
    if (live.length > 1) {
      let suffixes = 0;
      for (const s of live) {
        if (b.budget === 0) break;
        const t = this.seqs.get(s)!.tracker;
        if (t.phase !== 'suffix') continue;
        const r = t.nextCompute(b.budget, now);
        if (!r) continue;
        push(s, r);
        suffixes++;
      }
      if (suffixes > 0) return;
    }
    // Fronts stop when the first request that waits only for its loads gets them, including
    // one whose front reaches its loads in this very step.
    const landAt = live.length > 1 ? this.landingTimes() : new Map<SeqState, number>();
    const waitsFor = (s: SeqState) => {
      const at = landAt.get(s);
      return at !== undefined && at > now ? at : Infinity;
    };
    let horizon = Infinity;
    for (const s of live) if (this.seqs.get(s)!.tracker.phase === 'draining') horizon = Math.min(horizon, waitsFor(s));
    for (const s of live) {
      if (b.budget === 0) break;
      const t = this.seqs.get(s)!.tracker;
      let cap = b.budget;
      if (horizon < Infinity && t.phase === 'prefix') {
        cap = sizeToLimit(b, t.computedEnd, b.budget, horizon - now, 0, this.core.blockSize);
        if (cap === 0) break;
      }
      const r = t.nextCompute(cap, now);
      if (!r) continue;
      push(s, r);
      if (r.start + r.tokens >= t.loadFrom * t.chunkTokens) horizon = Math.min(horizon, waitsFor(s));
    }
  }

  private issueLoads(s: SeqState, b: StepBuilder, now: number): void {
    const t = this.seqs.get(s)!.tracker;
    const core = this.core;
    const L = core.numLayers;
    const nb = s.req.prefix!.chunkTokens / core.blockSize;
    // Landing blocks first: a chunk the tracker marks in flight must be issued.
    while (core.kv.host.canAllocate(L * nb)) {
      const c = t.nextLoad(now, b.budget);
      if (c < 0) break;
      this.issueChunk(s, c, b, now);
    }
  }

  private issueChunk(s: SeqState, chunk: number, b: StepBuilder, now: number): void {
    const core = this.core;
    const p = s.req.prefix!;
    const kv = s.hold!.kv;
    const nb = p.chunkTokens / core.blockSize;
    const bytes = this.chunkBytes(s);
    const dest: ChunkLanding[] = [];
    const moves = [];
    const release = [];
    for (let l = 0; l < core.numLayers; l++) {
      const landing = core.kv.allocLanding(s.id, l, nb)!;
      dest.push({ layer: l, tier: 'host', blocks: landing });
      const pairs = new Int32Array(2 * nb);
      for (let j = 0; j < nb; j++) {
        pairs[2 * j] = landing[j];
        pairs[2 * j + 1] = kv.tables[l][chunk * nb + j];
      }
      moves.push({ layer: l, from: 'host' as const, to: 'device' as const, pairs });
      release.push({ layer: l, tier: 'host' as const, blocks: landing });
    }
    core.stats.prefixLoads++;
    core.stats.loadedBytes += bytes;
    const read = core.transfers.issue(b, s, { kind: 'prefix-read', channel: 'storage', bytes, moves: [], chunk: { index: chunk, hash: p.chunkHashes[chunk], dest } });
    const load = core.transfers.issue(
      b,
      s,
      { kind: 'prefix-load', channel: 'h2d', bytes, moves, after: [read.t.id] },
      {
        release,
        onDone: (at, error, dropped) => {
          this.landed(load.t.id, at);
          const t = dropped ? undefined : this.seqs.get(s)?.tracker;
          if (error === undefined) {
            t?.onLoaded(chunk, at);
            return;
          }
          core.stats.prefixLoadFailures++;
          if (!t) return;
          t.onLoadFailed(chunk, at);
          this.onLoadFailed?.(s, chunk);
        },
      },
    );
    this.loads.set(load.t.id, s);
    this.slots.add(load.t.id, now, this.chunkLoadTime(s));
  }

  private landed(id: number, at: number): void {
    this.loads.delete(id);
    this.slots.land(id, at);
  }

  /** When each live request's issued loads are expected to land. */
  private landingTimes(): Map<SeqState, number> {
    const landAt = new Map<SeqState, number>();
    for (const [id, s] of this.loads) {
      if (!s.hold || s.hold.dropped) continue;
      landAt.set(s, Math.max(landAt.get(s) ?? -Infinity, this.slots.expected(id)!));
    }
    return landAt;
  }

  /** GPU seconds of a request's last step(s): its uncached suffix, or the recomputed last
   *  token of a fully stored prompt. */
  private suffixTime(P: number, stored: number): number {
    return P > stored ? this.core.cost.prefillChunkTime(P - stored, stored) : this.core.cost.prefillChunkTime(1, P - 1);
  }

  /**
   * Several requests in flight: one plan for all (planner.ts), imposed on their trackers as
   * splits. A lone request keeps its tracker's own planning, which is the single-request
   * oracle; with others in flight that planning assumes the store and the GPU are its own.
   * Once planned jointly a request stays so: its tracker's own view is wrong by then.
   */
  private planJointly(now: number, live: readonly SeqState[]): void {
    if (this.fixedSplit !== undefined) return;
    if (live.length < 2 && !live.some((s) => this.seqs.get(s)!.split !== undefined)) {
      for (const s of live) this.seqs.get(s)!.tracker.setSplit(null);
      return;
    }
    const landAt = this.landingTimes();
    let storageFree = now;
    for (const at of landAt.values()) storageFree = Math.max(storageFree, at);
    const cost = this.core.cost;
    const dil = this.frontEstimated > 0 ? Math.max(1, this.frontActual / this.frontEstimated) : 1;
    const jobs: PlanJob[] = [];
    const planned: SeqState[] = [];
    const fixed: FixedJob[] = [];
    for (const s of live) {
      const t = this.seqs.get(s)!.tracker;
      const C = t.chunkTokens;
      const S = t.storedChunks;
      const P = t.promptLen;
      const v = t.planView();
      const suffix = dil * this.suffixTime(P, S * C);
      const loadsLandAt = landAt.get(s) ?? -Infinity;
      if (!v.plannable) {
        fixed.push({ readyAt: Math.max(now, loadsLandAt), suffix: t.phase === 'draining' || t.phase === 'suffix' ? suffix : 0 });
        continue;
      }
      const front = new Float64Array(v.last - v.first + 1);
      for (let k = v.first; k <= v.last; k++) {
        const tokens = k * C - v.front;
        front[k - v.first] = tokens > 0 ? dil * cost.prefillChunkTime(tokens, v.front) : 0;
      }
      jobs.push({
        first: v.first,
        last: v.last,
        stored: S,
        front,
        computeAll: v.last === S ? dil * cost.prefillChunkTime(P - v.front, v.front) : undefined,
        loadTime: this.chunkLoadTime(s),
        loadsLandAt,
        suffix,
      });
      planned.push(s);
    }
    if (jobs.length === 0) return;
    const plan = planCake({ now, storageFreeAt: storageFree, jobs, fixed, previous: planned.map((s, i) => this.seqs.get(s)!.split ?? jobs[i].last) });
    planned.forEach((s, i) => {
      const p = this.seqs.get(s)!;
      p.split = plan.splits[i];
      p.tracker.setSplit(plan.splits[i]);
    });
  }

  // ---- results ------------------------------------------------------------------------

  /** Compares a step that ran fronts with what the cost model says those ranges take alone
   *  (the planner's unit), so the planner sees the fronts' real pace on a busy GPU. */
  observe(plan: StepPlan, result: StepResult): void {
    if (this.mode !== 'cake') return;
    const ids = new Set<string>();
    for (const s of this.seqs.keys()) ids.add(s.id);
    let est = 0;
    for (const c of plan.compute) {
      if (c.phase === 'prefill' && ids.has(c.seq)) est += this.core.cost.prefillChunkTime(c.tokens, c.cachedBefore);
    }
    if (est <= 0) return;
    est += this.wakeSeconds(result.start);
    this.frontActual = 0.8 * this.frontActual + 0.2 * (result.end - result.start);
    this.frontEstimated = 0.8 * this.frontEstimated + 0.2 * est;
  }

  /** `s` computed [start, start + tokens). True when its prefill is complete: all prompt KV is
   *  in place and the first token can be emitted. */
  onComputed(s: SeqState, start: number, tokens: number): boolean {
    const p = this.seqs.get(s)!;
    const t = p.tracker;
    t.onComputed(start, tokens);
    s.computed = t.computedEnd;
    if (!t.done) return false;
    this.core.stats.loadedTokens += t.loadedTokens;
    this.core.stats.computedPrefixTokens += t.computedTokens;
    s.loadedTokens = t.loadedTokens;
    s.computed = s.target;
    this.seqs.delete(s);
    return true;
  }
}
