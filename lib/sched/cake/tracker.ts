// Cake (arXiv 2410.03065): bidirectional compute-or-load of a stored prompt prefix.
//
// A prompt's first `storedChunks` chunks have KV in the prefix store. Computing chunk i costs
// more the further back it sits (attention over everything before it); loading a chunk costs
// the same anywhere. So the front of the prompt is computed while chunks are loaded from the
// back, and the two meet somewhere in the middle. Compute gets only the token budget the
// scheduler has left after decodes and ordinary prefills; loads run on the storage channel
// regardless.
//
// One CakeTracker per request. The scheduler asks it, each step, which chunk to load next
// (nextLoad) and which token range to prefill (nextCompute), and reports back completions
// (onLoaded, onComputed). The tracker never touches memory or time itself.
//
// Where the two sides meet. Without estimates the tracker is the paper's greedy: the front
// computes toward the lowest issued load and loads are issued down to the front. Where the
// meeting lands then depends on step and load granularity: a whole chunk (several percent of
// TTFT on a 16K prompt) when both sides advance chunk by chunk, much more when a step computes
// many chunks or loads are only issued at step boundaries. With `estimates` (compute and load
// seconds from the scheduler's cost model) the tracker re-solves the split every time it is
// asked: from the current front, the loads in flight and their expected completion (`now`
// and the landing times sharpen these), it picks the split k minimising
//   max(front reaches k, loads of [k, loadFrom) land) + suffix,
// or computing everything with the suffix batched into the same steps, then issues loads
// only down to k and computes only up to k. Re-solving each step absorbs a changing budget
// and loads that run late; the front's measured speed against its estimate (the estimate is
// for the range alone, while a shared step runs slower) scales later compute estimates.
// What re-solving cannot undo is a load already issued: estimates that overstate compute
// commit loads the front would have beaten, and the front then waits for them. So the
// split's last load, the one a near tie decides, is issued only once the loads queued
// before it would otherwise run out before the next step (defersLast).
//
// Several prefix requests at once. Each tracker plans its own request; by default it assumes
// the store and the GPU's leftover budget are its alone. With several Cake requests that is
// wrong twice over: the store serves everyone's loads in issue order, and fronts behind
// another prefill get no budget until it is done. A scheduler that knows both passes
// estimates.storageFreeAt and estimates.computeFreeAt, and the planner starts its loads and
// its front there. That corrects each tracker's view, not the joint schedule: splits chosen
// one request at a time are not jointly best (when compute is scarce, every front that opts
// to compute queues behind the others). So with several Cake requests in flight the
// prefix coordinator plans them together (planner.ts) and imposes each split with setSplit;
// a tracker's own planning is then unused, and it serves a lone request.
//
// The front reaching a chunk that is in flight. The front never computes a chunk whose load
// was issued: the load cannot be revoked (plans have no cancel), so computing it would spend
// GPU time on KV that is already on its way, and the suffix must wait for every in-flight load
// anyway because its attention reads all prefix KV. So the front stops at the lowest issued
// chunk and the request waits; once every issued load has landed (in any order), compute
// skips to the uncached suffix. Loads are likewise never issued for a chunk the front has
// started (even partially), so no token is both computed and loaded; the one exception is
// the last prompt token of a fully stored prompt, recomputed to get the first token's logits.
// Should a caller still report a load landing for a chunk that the front also computed, it is
// counted in wastedLoadTokens rather than trusted twice.
//
// A load that fails (the store missed, or its bytes did not verify) leaves a hole: its chunk
// holds nothing usable. Once the front has met the loads and every issued load has landed or
// failed, the front moves past the landed chunks only up to the first hole and computes it
// (everything before it is in place by then), then moves on: holes are computed in order,
// and the suffix after them. The request finishes with the same KV as computing it all.

import { LoadSlots } from './load-slots.js';

export type PrefixMode = 'compute-only' | 'load-only' | 'cake';

/** Seconds the scheduler expects; used only to choose the split point. */
export interface CakeEstimates {
  /** Seconds to prefill tokens [start, start + tokens) of this prompt, as the scheduler will
   *  run them (its per-step budget and co-scheduled work folded in as best it knows). */
  compute(start: number, tokens: number): number;
  /** Seconds to load chunk `chunk` from the prefix store (transfer time, latency included). */
  load(chunk: number): number;
  /** When the prefix store's read channel is expected to finish what is already queued on it
   *  (absolute seconds, same clock as `now`). A store shared by several requests serves them
   *  in order, so this request's new loads start no earlier; without it the tracker assumes
   *  the channel carries only its own loads. */
  storageFreeAt?(): number;
  /** When this request's front can expect the GPU's leftover budget (absolute seconds, same
   *  clock as `now`): after the prefills served before it. Without it the tracker assumes its
   *  front computes from now on. */
  computeFreeAt?(): number;
  /** Seconds a step starting at `now` takes beyond its compute: the cost model's wake cost
   *  when the executor has sat idle (0 otherwise). The front's first step after idle pays
   *  it once; without it here that step reads as a slow front, and the split, scaled by
   *  the slowdown, commits loads the front would have beaten. */
  stepOverhead?(now: number): number;
}

export interface CakeTrackerOptions {
  promptLen: number;
  chunkTokens: number;
  /** Leading chunks of the prompt held by the prefix store (0..floor(promptLen/chunkTokens)). */
  storedChunks: number;
  mode: PrefixMode;
  /** Prefix loads of this request outstanding at once. Bounds the bandwidth committed ahead
   *  of the meeting point, which cannot be taken back. Default 2 for the greedy meeting; with
   *  `estimates`, default unbounded, because the planner itself issues loads only down to the
   *  split it chose, and loads are issued only at step boundaries: a small bound would idle the
   *  storage channel for most of a long step whenever loads are fast. */
  maxLoadsInFlight?: number;
  /** Cost estimates; without them the meeting point is found greedily (the paper's Cake).
   *  Pass `now` to nextLoad/nextCompute and `at` to onLoaded with them. */
  estimates?: CakeEstimates;
}

export type CakePhase =
  /** Computing or loading the stored prefix. */
  | 'prefix'
  /** Front and loads have met; waiting for loads still in flight. */
  | 'draining'
  /** Prefix KV all in place; computing the uncached suffix (or the recomputed last token). */
  | 'suffix'
  | 'done';

const MODES: readonly PrefixMode[] = ['compute-only', 'load-only', 'cake'];

function checkInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new RangeError(`CakeTracker: ${name} must be an integer ${range}, got ${String(v)}`);
  }
  return v;
}

export class CakeTracker {
  readonly promptLen: number;
  readonly chunkTokens: number;
  readonly storedChunks: number;
  readonly mode: PrefixMode;
  readonly maxLoadsInFlight: number;

  /** KV of tokens [0, front) is in place: computed from the front, then (once the loads
   *  have met it and landed) the loaded chunks, then the computed suffix. */
  private front = 0;
  /** End of the range the last nextCompute handed out and onComputed has not yet reported:
   *  loads must not be issued under it (the scheduler may ask for loads after compute). */
  private planned = 0;
  /** Lowest chunk whose load has been issued; chunks [low, storedChunks) are loaded or in flight. */
  private low: number;
  private readonly inFlightChunks = new Set<number>();
  /** Issued chunks whose load failed and that the front has not yet recomputed. */
  private readonly holes = new Set<number>();
  /** A split imposed by a joint planner (setSplit), or null: this tracker plans alone. */
  private external: number | null = null;
  private loadedCount = 0;
  private computed = 0;
  private wasted = 0;
  private recomputedLast = false;
  /** A computed range ended at the prompt's end: the first token's logits exist. */
  private endComputed = false;
  private failedCount = 0;

  private readonly est?: CakeEstimates;
  /** Estimated load seconds of each stored chunk, and their prefix sums (with estimates only). */
  private readonly chunkLoad: Float64Array;
  private readonly loadPrefix: Float64Array;
  /** Bumped whenever a landing, a computed range or a speed measurement changes the plan. */
  private version = 0;
  private splitMemo: { now: number | undefined; planned: number; version: number; value: number } | null = null;
  /** Expected landings of the loads in flight (absolute when the caller passes `now`, else
   *  unused): one after another on the read channel, corrected by the landings seen. */
  private readonly loadSlots = new LoadSlots<number>();
  /** Measured over estimated front compute time, per step. The caller's compute estimate is
   *  for the range alone; in a busy step the front shares the GPU with decodes and other
   *  prefills and gets only the leftover budget, so it runs slower than estimated. A step is
   *  measured from the `now` of the call that handed out its range to the `now` of the first
   *  call after it was reported computed (the next step's start). Each step weighs its
   *  estimate. */
  private readonly stepPace: { ratio: number; weight: number }[] = [];
  /** One chunk's compute estimate: the slowdown's prior weight. */
  private priorCompute = 0;
  /** A range reported computed, waiting for the next `now` to close its measurement. */
  private openMeasure: { since: number; estimate: number } | null = null;
  /** A range handed out by nextCompute: when, and its estimate. */
  private handedOut: { since: number; estimate: number } | null = null;

  constructor(opts: CakeTrackerOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('CakeTracker: options object required');
    this.promptLen = checkInt('promptLen', opts.promptLen, 1);
    this.chunkTokens = checkInt('chunkTokens', opts.chunkTokens, 1);
    const maxStored = Math.floor(this.promptLen / this.chunkTokens);
    this.storedChunks = checkInt(`storedChunks (promptLen ${this.promptLen} / chunkTokens ${this.chunkTokens})`, opts.storedChunks, 0, maxStored);
    if (!MODES.includes(opts.mode)) {
      throw new RangeError(`CakeTracker: mode must be one of ${MODES.join(', ')}, got ${String(opts.mode)}`);
    }
    this.mode = opts.mode;
    this.maxLoadsInFlight = checkInt('maxLoadsInFlight', opts.maxLoadsInFlight ?? (opts.estimates !== undefined ? Math.max(1, this.storedChunks) : 2), 1);
    this.low = this.storedChunks;
    this.chunkLoad = new Float64Array(0);
    this.loadPrefix = new Float64Array(1);
    if (opts.estimates !== undefined) {
      const e = opts.estimates;
      if (typeof e?.compute !== 'function' || typeof e?.load !== 'function') {
        throw new TypeError('CakeTracker: estimates must have compute(start, tokens) and load(chunk) functions');
      }
      this.est = e;
      this.chunkLoad = new Float64Array(this.storedChunks);
      for (let i = 0; i < this.storedChunks; i++) this.chunkLoad[i] = this.estimate('load', e.load(i));
      this.loadPrefix = new Float64Array(this.storedChunks + 1);
      for (let i = 0; i < this.storedChunks; i++) this.loadPrefix[i + 1] = this.loadPrefix[i] + this.chunkLoad[i];
      if (this.storedChunks > 0) this.priorCompute = this.estimate('compute', e.compute(0, this.chunkTokens));
    }
  }

  private estimate(what: string, v: number): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`CakeTracker: estimates.${what} must return a finite number >= 0, got ${String(v)}`);
    }
    return v;
  }

  // ---- state --------------------------------------------------------------------------

  /** The compute front: KV of tokens [0, computedEnd) is in place. Until the loads land it
   *  is all computed; once they have met the front and landed, the front moves past the
   *  loaded chunks, so this is also the prefill progress (the suffix starts here). */
  get computedEnd(): number {
    return this.front;
  }
  /** Lowest chunk whose load has been issued (storedChunks when none). */
  get loadFrom(): number {
    return this.low;
  }
  get loadsInFlight(): number {
    return this.inFlightChunks.size;
  }
  /** Tokens whose KV was loaded (landed loads that were used). */
  get loadedTokens(): number {
    return this.loadedCount * this.chunkTokens;
  }
  /** Tokens whose KV was computed, the recomputed last token included. */
  get computedTokens(): number {
    return this.computed;
  }
  /** Loaded tokens not used because the front had computed them (0 when driven as documented). */
  get wastedLoadTokens(): number {
    return this.wasted;
  }
  /** Whether the last prompt token was recomputed over loaded KV (fully stored prompt). */
  get recomputedLastToken(): boolean {
    return this.recomputedLast;
  }
  /** Loads that failed; their chunks were (or will be) computed instead. */
  get failedLoads(): number {
    return this.failedCount;
  }
  /** What a joint planner needs to choose this request's split (see planner.ts):
   *  the lowest split still possible (the front has started the chunks below it), the
   *  highest (the lowest issued load), and whether a split can still change anything. */
  planView(): { first: number; last: number; front: number; plannable: boolean } {
    const first = Math.min(Math.ceil(Math.max(this.front, this.planned) / this.chunkTokens), this.low);
    return { first, last: this.low, front: this.front, plannable: this.mode === 'cake' && !this.met && !this.done };
  }
  /** Imposes the split chosen by a planner over several requests (chunks [0, k) computed,
   *  [k, storedChunks) loaded), clamped to what is still possible; null hands the choice
   *  back to this tracker's own single-request planning. */
  setSplit(k: number | null): void {
    if (k !== null) checkInt('split', k, 0, this.storedChunks);
    if (k !== this.external) this.version++;
    this.external = k;
  }
  private get prefixTokens(): number {
    return this.storedChunks * this.chunkTokens;
  }
  /** Every stored chunk is computed or issued for loading. */
  private get met(): boolean {
    return this.mode === 'compute-only' || this.front >= this.low * this.chunkTokens;
  }
  get phase(): CakePhase {
    if (this.done) return 'done';
    if (!this.met) return 'prefix';
    if (this.inFlightChunks.size > 0) return 'draining';
    return 'suffix';
  }
  /** All prompt KV is in place and the last prompt token has been computed: the first
   *  token can be emitted. */
  get done(): boolean {
    return this.front >= this.promptLen && this.inFlightChunks.size === 0 && this.endComputed;
  }

  /** Once the front has met the loads and they have all landed (or failed), the loaded chunks
   *  join the in-place KV and the front moves past them, up to the first hole. */
  private settle(): void {
    if (!this.met || this.inFlightChunks.size > 0) return;
    const C = this.chunkTokens;
    while (this.front < this.prefixTokens && this.front % C === 0) {
      const c = this.front / C;
      if (c < this.low || this.holes.has(c)) break;
      this.front += C;
    }
  }

  // ---- loads --------------------------------------------------------------------------

  /** Next chunk to load from the back (it is marked in flight), or -1: none left, met, mode
   *  is compute-only, maxLoadsInFlight reached, or the split's last chunk can wait a step
   *  (see defersLast). `now` (seconds) sharpens the split choice when estimates were given;
   *  `stepTokens`, the tokens this step can give the front, lets that last load wait only
   *  as long as it safely can. */
  nextLoad(now?: number, stepTokens?: number): number {
    if (stepTokens !== undefined) checkInt('stepTokens', stepTokens, 0);
    this.observe(now);
    if (this.mode === 'compute-only' || this.low === 0) return -1;
    if (this.inFlightChunks.size >= this.maxLoadsInFlight) return -1;
    const chunk = this.low - 1;
    // Never load a chunk the front has started: those tokens would be paid for twice.
    if (chunk * this.chunkTokens < Math.max(this.front, this.planned)) return -1;
    if (this.mode === 'cake' && chunk < this.split(now)) return -1;
    if (this.defersLast(chunk, now, stepTokens)) return -1;
    this.low = chunk;
    this.inFlightChunks.add(chunk);
    if (this.est !== undefined) {
      this.loadSlots.add(chunk, now ?? 0, this.chunkLoad[chunk], this.storageFree(now));
    }
    return chunk;
  }

  /** Just in time for the split's last chunk. Its load is the one a near tie commits: the
   *  front may yet turn out fast enough to compute it, and a load cannot be taken back.
   *  Issuing it later costs nothing while the read channel stays busy until the next step,
   *  so it waits while the loads already queued outlast, by a quarter, the longest this
   *  step's front can run (to the split, within `stepTokens` when the caller says how many
   *  tokens the step can give it): the next step re-solves the split with one more
   *  measurement. Only a tracker planning alone, with a clock. */
  private defersLast(chunk: number, now?: number, stepTokens?: number): boolean {
    if (this.mode !== 'cake' || this.external !== null || this.est === undefined || now === undefined) return false;
    if (chunk !== this.split(now) || this.loadSlots.size === 0) return false;
    // The step's front: what nextCompute already handed out this step (when the caller asks
    // for loads after compute), else what it can hand out.
    const tokens = this.planned > this.front ? this.planned - this.front : Math.min(chunk * this.chunkTokens - this.front, stepTokens ?? Infinity);
    if (!(tokens > 0)) return false;
    const step = this.overhead(now) + this.slowdown * this.estimate('compute', this.est.compute(this.front, tokens));
    return this.loadSlots.end - now > 1.25 * step;
  }

  /** A load issued by nextLoad has landed (loads may land in any order). `at` is its
   *  completion time, used to correct the expected landings of the loads still in flight. */
  onLoaded(chunk: number, at?: number): void {
    this.landedOrFailed('onLoaded', chunk);
    if ((chunk + 1) * this.chunkTokens <= this.front) this.wasted += this.chunkTokens;
    else this.loadedCount++;
    this.loadSlots.land(chunk, at);
    this.settle();
  }

  /** A load issued by nextLoad failed: nothing it wrote may be read, so its chunk is
   *  computed once everything before it is in place (see the header). */
  onLoadFailed(chunk: number, at?: number): void {
    this.landedOrFailed('onLoadFailed', chunk);
    this.failedCount++;
    this.holes.add(chunk);
    this.loadSlots.land(chunk, at);
    this.settle();
  }

  private landedOrFailed(op: string, chunk: number): void {
    if (!this.inFlightChunks.has(chunk)) {
      throw new RangeError(`CakeTracker: ${op}(${String(chunk)}): chunk is not in flight (in flight: ${[...this.inFlightChunks].join(', ') || 'none'})`);
    }
    this.inFlightChunks.delete(chunk);
    this.version++;
  }

  // ---- compute ------------------------------------------------------------------------

  /** End (exclusive) of the tokens the front may compute at all: up to the lowest issued
   *  load, or through the suffix when no load was ever issued (the prefix end is then no
   *  boundary: one step may run from the prefix into the suffix). */
  private frontCap(): number {
    if (this.met) {
      // Holes and the suffix: only once every issued load has landed, since their attention
      // reads all of them; then up to the next landed chunk (settle moves past it).
      if (this.inFlightChunks.size > 0) return this.front;
      const C = this.chunkTokens;
      for (let c = Math.max(this.low, Math.ceil(this.front / C)); c < this.storedChunks; c++) if (!this.holes.has(c)) return c * C;
      return this.promptLen;
    }
    if (this.mode === 'load-only') return this.front;
    return this.low === this.storedChunks ? this.promptLen : this.low * this.chunkTokens;
  }

  /** End (exclusive) of the tokens the front should compute now. */
  private computeLimit(now?: number): number {
    const cap = this.frontCap();
    if (this.met || (this.est === undefined && this.external === null) || this.mode !== 'cake') return cap;
    const k = this.split(now);
    return Math.min(cap, k === this.storedChunks ? this.promptLen : k * this.chunkTokens);
  }

  /** Front compute for this step within `budget` tokens: the token range to prefill, or
   *  null (budget 0, load-only waiting, waiting on in-flight loads before the suffix, or
   *  done). The range's start is also its cachedBefore (everything before it is in place by
   *  the time it runs); a range ending at promptLen emits the first token. */
  nextCompute(budget: number, now?: number): { start: number; tokens: number } | null {
    checkInt('budget', budget, 0);
    this.observe(now);
    this.handedOut = null;
    this.planned = this.front;
    if (budget === 0 || this.done) return null;
    if (this.front >= this.promptLen) {
      // Fully stored prompt, its last chunk loaded: recompute the last token for its logits.
      return this.inFlightChunks.size === 0 ? { start: this.promptLen - 1, tokens: 1 } : null;
    }
    const limit = this.computeLimit(now);
    if (limit <= this.front) return null;
    const tokens = Math.min(budget, limit - this.front);
    this.planned = this.front + tokens;
    if (this.est !== undefined && now !== undefined) {
      this.handedOut = { since: now, estimate: this.estimate('compute', this.est.compute(this.front, tokens)) + this.overhead(now) };
    }
    return { start: this.front, tokens };
  }

  /** The scheduler computed [start, start + tokens): what nextCompute returned, or a
   *  prefix of it. */
  onComputed(start: number, tokens: number): void {
    checkInt('tokens', tokens, 1);
    if (this.front >= this.promptLen) {
      if (start !== this.promptLen - 1 || tokens !== 1 || this.endComputed || this.inFlightChunks.size > 0) {
        throw new RangeError(`CakeTracker: onComputed(${String(start)}, ${tokens}): the prompt is complete; only the last token (${this.promptLen - 1}, 1) may be recomputed, once, after all loads land`);
      }
      this.recomputedLast = true;
      this.endComputed = true;
      this.computed += 1;
      return;
    }
    if (start !== this.front) {
      throw new RangeError(`CakeTracker: onComputed(start=${String(start)}): expected start ${this.front} (compute is reported in order)`);
    }
    const allowed = this.frontCap();
    if (start + tokens > allowed) {
      throw new RangeError(`CakeTracker: onComputed(${start}, ${tokens}): runs past token ${allowed} (a loaded or in-flight chunk, or the prompt end)`);
    }
    this.computed += tokens;
    this.front = start + tokens;
    if (this.front >= this.promptLen) this.endComputed = true;
    for (const h of this.holes) if ((h + 1) * this.chunkTokens <= this.front) this.holes.delete(h);
    this.planned = this.front;
    this.version++;
    if (this.handedOut !== null) {
      this.openMeasure = this.handedOut;
      this.handedOut = null;
    }
    this.settle();
  }

  // ---- split --------------------------------------------------------------------------

  /** The chunk index where compute should stop and loads begin, re-solved from the current
   *  state: min over k of max(front reaches k*chunkTokens, loads of [k, loadFrom) land), plus
   *  the suffix. Without estimates: the greedy meeting point (the lowest chunk the front has
   *  not started).
   *
   *  The front's arrival time rises with k and the loads' landing time falls with k (compute
   *  estimates are assumed to grow with the range), so the best k sits where they cross: a
   *  binary search, O(log n) estimate calls. The result is kept for repeated calls at the same
   *  clock and state (the scheduler asks for loads one at a time): issuing a load down to the
   *  split moves the loads' start and their remaining work by the same amount, so the split
   *  does not change. */
  private split(now?: number): number {
    const C = this.chunkTokens;
    const first = Math.min(Math.ceil(Math.max(this.front, this.planned) / C), this.low);
    if (first >= this.low) return first;
    if (this.external !== null) return Math.max(first, Math.min(this.external, this.low));
    if (this.est === undefined) return first;
    const memo = this.splitMemo;
    if (memo !== null && memo.now === now && memo.planned === this.planned && memo.version === this.version) return memo.value;
    const est = this.est;
    const t = now ?? 0;
    const slow = this.slowdown;
    const computeFrom = Math.max(t, this.computeFree(now));
    // When this request's issued loads have landed, and when new ones could start.
    const landed = this.inFlightChunks.size === 0 ? t : now === undefined ? this.inFlightLoadSum() : Math.max(t, this.loadSlots.end);
    const newFrom = Math.max(landed, this.storageFree(now));
    const low = this.low;
    // The front's time to k is estimated over the whole range, not summed per chunk: a budget
    // of several chunks per step pays the per-step cost once for all of them. The range
    // includes this step's planned compute and the rest of a started chunk, which are owed
    // whatever the split.
    const wake = this.overhead(now);
    const frontAt = (k: number) => (k * C > this.front ? computeFrom + wake + slow * this.estimate('compute', est.compute(this.front, k * C - this.front)) : t);
    const loadsAt = (k: number) => (k < low ? newFrom + this.loadPrefix[low] - this.loadPrefix[k] : landed);
    let lo = first;
    let hi = low;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (frontAt(mid) >= loadsAt(mid)) hi = mid;
      else lo = mid + 1;
    }
    const P = this.promptLen;
    const S = this.storedChunks;
    const suffix = this.estimate('compute', P > S * C ? est.compute(S * C, P - S * C) : est.compute(P - 1, 1));
    let best = lo;
    let bestCost = Math.max(frontAt(lo), loadsAt(lo)) + suffix;
    // Ties go to loading: compute is what other requests contend for.
    if (lo > first) {
      const cost = Math.max(frontAt(lo - 1), loadsAt(lo - 1)) + suffix;
      if (cost <= bestCost + 1e-12) {
        best = lo - 1;
        bestCost = cost;
      }
    }
    // Once every stored chunk is computed and nothing was ever loaded, the suffix is just more
    // front compute, batched into the same steps; otherwise it follows the last load and pays
    // its own steps. Comparing whole-prefill times keeps Cake from ever choosing a split that
    // is slower than computing everything (short suffixes on short prompts).
    if (low === S) {
      const all = computeFrom + wake + slow * this.estimate('compute', est.compute(this.front, P - this.front));
      if (all < bestCost - 1e-12) best = S;
    }
    this.splitMemo = { now, planned: this.planned, version: this.version, value: best };
    return best;
  }

  /** Closes the measurement of the last computed range at the first clock reading after it. */
  private observe(now?: number): void {
    if (this.openMeasure === null || now === undefined) return;
    const took = now - this.openMeasure.since;
    if (took > 0 && this.openMeasure.estimate > 0) {
      this.stepPace.push({ ratio: took / this.openMeasure.estimate, weight: this.openMeasure.estimate });
      this.version++;
    }
    this.openMeasure = null;
  }

  /** How much slower (or faster) than estimated the front has run (1 until measured): the
   *  weighted median of its steps' measured / estimated ratios, with one chunk's estimate at
   *  ratio 1 as a prior. A median, because loads committed on it cannot be taken back: a
   *  front that really runs slow (a shared GPU) is slow in most of its steps, while one
   *  stalled step (a preempted vCPU, a page-fault storm) would otherwise pull a mean far
   *  enough to load chunks the front then beats. The prior keeps a single step from setting
   *  the pace alone: with one measured step it moves the ratio halfway. */
  private get slowdown(): number {
    if (this.stepPace.length === 0) return 1;
    const xs = [{ ratio: 1, weight: this.priorCompute }, ...this.stepPace].sort((a, b) => a.ratio - b.ratio);
    const half = xs.reduce((a, x) => a + x.weight, 0) / 2;
    let cum = 0;
    for (let i = 0; i < xs.length; i++) {
      cum += xs[i].weight;
      if (cum > half * (1 + 1e-12)) return xs[i].ratio;
      // Exactly half the weight on each side: the midpoint.
      if (cum >= half * (1 - 1e-12)) return i + 1 < xs.length ? (xs[i].ratio + xs[i + 1].ratio) / 2 : xs[i].ratio;
    }
    return xs[xs.length - 1].ratio;
  }

  /** The caller's per-step overhead for a step starting at `now` (0 without one). */
  private overhead(now?: number): number {
    if (now === undefined || this.est?.stepOverhead === undefined) return 0;
    return this.estimate('stepOverhead', this.est.stepOverhead(now));
  }

  /** The shared store's queue end, when the caller tracks it and the clock is known. */
  private storageFree(now?: number): number {
    if (now === undefined || this.est?.storageFreeAt === undefined) return -Infinity;
    const v = this.est.storageFreeAt();
    return Number.isFinite(v) ? v : -Infinity;
  }

  /** When the caller expects this front to get compute, when it says so and the clock is known. */
  private computeFree(now?: number): number {
    if (now === undefined || this.est?.computeFreeAt === undefined) return -Infinity;
    const v = this.est.computeFreeAt();
    return Number.isFinite(v) ? v : -Infinity;
  }

  private inFlightLoadSum(): number {
    let s = 0;
    for (const c of this.inFlightChunks) s += this.chunkLoad[c];
    return s;
  }
}
