// The scheduler core, vLLM v1 style: one class holds the waiting queue and the running set,
// and each step turns them into a plain StepPlan. Policies are small objects plugged in:
// the memory policy (baseline: all layers on the device at admission; LayerKV: per-layer
// placement with host offload) and the prefix mode (Cake's compute-or-load for requests
// whose prefix KV is in the store).
//
// A step, in order:
//   1. decodes of running sequences (one token each), growing their tables a block at a
//      time and preempting the most recently admitted sequence when the device is full;
//   2. chunks of running ordinary prefills under the token budget;
//   3. admissions from the waiting queue (FCFS; LayerKV's SLO-aware admission orders by
//      TTFT deadline and sizes chunks so decoding requests keep their TPOT SLO);
//   4. Cake prefix requests: their loads are issued regardless of the budget, their
//      compute takes only what is left of it, in admission order. With more than one in
//      flight, one planner (cake-planner.ts) chooses every request's split from the store's
//      backlog and the fronts' queue; a lone request plans its own split (the oracle's).
import { requestProblem, type Request } from '../workload/request.js';
import { show } from '../util/show.js';
import { KvCacheManager, type SeqKv } from '../kv/block-table.js';
import { CakeTracker, type PrefixMode } from './cake.js';
import { planCake, type FixedJob, type PlanJob } from './cake-planner.js';
import { BaselineMemory, LayerKvMemory, type CostLike, type MemoryPolicy } from './memory.js';
import type { ComputeItem, Scheduler, SeqEvent, SeqId, StepPlan, StepResult, TierName, Transfer } from './plan.js';

export interface SchedulerConfig {
  /** Cost model of the deployment: sizes pools, predicts step and transfer times. */
  cost: CostLike & { readonly model: { numLayers: number; name?: string }; readonly gpu: { memBytes: number; d2hBandwidth: number; h2dBandwidth: number; transferLatency: number } };
  memory?: 'baseline' | 'layerkv';
  /** Prefix reuse for requests with prefix hits ('none': compute everything). */
  prefixMode?: 'none' | PrefixMode;
  /** Tokens per block (16). */
  blockSize?: number;
  /** Device layer-blocks (default: the GPU's KV memory / bytes of one layer-block). */
  deviceBlocks?: number;
  /** Host layer-blocks (default: hostMemBytes / bytes of one layer-block). */
  hostBlocks?: number;
  /** Host memory for offloaded KV, bytes (256 GiB). */
  hostMemBytes?: number;
  /** Token budget per step (2048). */
  maxBatchedTokens?: number;
  /** Running sequences at most (256). */
  maxRunning?: number;
  /** Device fraction admissions leave free (0.01). */
  watermark?: number;
  /** LayerKV's SLO-aware admission (default on for layerkv). */
  sloAware?: boolean;
  /** LayerKV: never keep fewer layers than this on the device (0). */
  minDeviceLayers?: number;
  /** Smallest chunk the oldest running prefill gets when TPOT slack is exhausted, so
   *  SLO-aware chunking cannot starve it (256). */
  minPrefillChunk?: number;
  /** Cake loads in flight per request (default: the tracker's, which with cost estimates
   *  is unbounded: the split is re-solved every step, so loads need no cap). */
  maxLoadsInFlight?: number;
  /** Bandwidth of the prefix store, for Cake's split estimates (bytes/s; default 10 GB/s). */
  storageBandwidth?: number;
  /** Emit per-layer BlockChange lists (true; a real executor needs them). */
  recordBlockChanges?: boolean;
  /** How a preempted sequence gives up its device blocks ('recompute'):
   *  - 'recompute': its KV is dropped and it prefills its prompt and generated tokens again;
   *  - 'swap': its device layers are copied to the host tier ('swap-out' on d2h), the device
   *    blocks are freed when that copy completes, and on resume every layer comes back with
   *    'swap-in' transfers on h2d before it decodes again. It keeps its KV and tokens. A
   *    victim the host cannot hold, one with transfers in flight, one still in its prefill or
   *    a Cake prefix request is recomputed instead (see preempt). */
  preemption?: 'recompute' | 'swap';
  /** Check invariants after every step (tests). */
  check?: boolean;
  name?: string;
}

type Status = 'waiting' | 'running' | 'finished';

/** One admission's hold on KV: transfers keep it alive after a preemption drops it. */
interface Holding {
  kv: SeqKv;
  inflight: number;
  dropped: boolean;
}

interface Seq {
  req: Request;
  id: SeqId;
  order: number;
  status: Status;
  /** Tokens whose KV the prefill must produce (prompt, plus generated tokens on recompute). */
  target: number;
  /** Tokens with KV in place. */
  computed: number;
  generated: number;
  firstTokenAt: number;
  hold: Holding | null;
  cake: CakeTracker | null;
  /** Whether this admission was ever admitted before (preempted sequences rejoin the front). */
  admittedOnce: boolean;
  /** Host-tier layers, for LayerKV decode loads. */
  hostLayers: number[];
  /** The joint Cake planner's last split for this request (a start for the next search). */
  cakeSplit?: number;
}

interface TransferRec {
  seq: Seq;
  hold: Holding;
  kind: Transfer['kind'];
  chunk?: number;
  /** Prefix loads: when the store is expected to finish this one (FIFO behind the others). */
  expectAt?: number;
  release?: { layer: number; tier: TierName; blocks: number[] };
}

export class SchedulerCore implements Scheduler {
  readonly name: string;
  readonly kv: KvCacheManager;
  readonly memory: MemoryPolicy;
  readonly prefixMode: 'none' | PrefixMode;
  readonly blockSize: number;
  readonly maxBatchedTokens: number;
  readonly maxRunning: number;
  readonly sloAware: boolean;
  readonly numLayers: number;
  readonly preemption: 'recompute' | 'swap';
  /** Counters for reports. */
  readonly stats = { preemptions: 0, swapOuts: 0, swapIns: 0, promotions: 0, streamedLoads: 0, offloads: 0, prefixLoads: 0, rejected: 0, loadedTokens: 0, computedPrefixTokens: 0 };

  private readonly cost: SchedulerConfig['cost'];
  private readonly minPrefillChunk: number;
  private readonly maxLoadsInFlight: number | undefined;
  private readonly storageBandwidth: number;
  private readonly check: boolean;
  private readonly seqs = new Map<SeqId, Seq>();
  /** FCFS: arrival order; preempted sequences go back to the front. */
  private waiting: Seq[] = [];
  /** Admission order; the last one is the preemption victim. */
  private running: Seq[] = [];
  private readonly transfers = new Map<number, TransferRec>();
  private pendingEvents: SeqEvent[] = [];
  private nextTransferId = 1;
  private stepNo = 0;
  private orderNo = 0;
  private lastAdmitKey = -Infinity;
  private readonly layerBytesPerToken: number;
  /** Measured duration of recent steps that carried decodes (EWMA), for predicting how
   *  long a request with host layers waits for promotion. */
  private decodeStepEwma = 0;
  /** h2d seconds planned so far in the step being built (promotions and streamed loads
   *  share PCIe, so each hiding check must count the others). */
  private h2dPlanned = 0;
  /** Device blocks the running sequences with host layers need to be promoted; admissions
   *  leave them free, so new prefills cannot starve decodes of their device blocks. */
  private promotionDemand = 0;
  /** Lazily built per step: when device blocks free up (see promotionWait). */
  private freeTimeline: { at: Float64Array; cum: Float64Array } | null = null;
  /** When the prefix store is expected to finish every load issued so far (FIFO). */
  private storageEnd = 0;
  /** Real seconds of steps that ran Cake fronts over the cost model's seconds for the same
   *  ranges (EWMA of both): decodes and ordinary prefills share those steps and take budget
   *  first, so fronts run slower than the model says; the joint planner scales by this. */
  private cakeActual = 0;
  private cakeEstimated = 0;
  /** Device blocks that in-flight swap-outs will free when they complete: a decode short of
   *  blocks that these will cover waits for them instead of preempting another sequence. */
  private swapFreeing = 0;

  constructor(cfg: SchedulerConfig) {
    if (!cfg || typeof cfg !== 'object' || !cfg.cost) throw new TypeError('SchedulerCore: config.cost (a CostModel) is required');
    const posInt = (name: string, v: number | undefined, d: number, min = 1): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < min) throw new RangeError(`SchedulerCore: ${name} must be an integer >= ${min}, got ${x}`);
      return x;
    };
    this.cost = cfg.cost;
    this.numLayers = posInt('cost.model.numLayers', cfg.cost.model.numLayers, 0);
    this.blockSize = posInt('blockSize', cfg.blockSize, 16);
    this.maxBatchedTokens = posInt('maxBatchedTokens', cfg.maxBatchedTokens, 2048);
    this.maxRunning = posInt('maxRunning', cfg.maxRunning, 256);
    this.minPrefillChunk = posInt('minPrefillChunk', cfg.minPrefillChunk, 256);
    this.maxLoadsInFlight = cfg.maxLoadsInFlight === undefined ? undefined : posInt('maxLoadsInFlight', cfg.maxLoadsInFlight, 2);
    this.storageBandwidth = cfg.storageBandwidth ?? 10e9;
    if (!(this.storageBandwidth > 0)) throw new RangeError(`SchedulerCore: storageBandwidth must be > 0 bytes/s, got ${this.storageBandwidth}`);
    const watermark = cfg.watermark ?? 0.01;
    if (!(watermark >= 0 && watermark < 1)) throw new RangeError(`SchedulerCore: watermark must be in [0, 1), got ${watermark}`);
    this.layerBytesPerToken = cfg.cost.kvBytes(1, 1);
    const blockBytes = this.layerBytesPerToken * this.blockSize;
    const deviceBlocks = cfg.deviceBlocks ?? Math.floor(cfg.cost.gpu.memBytes / blockBytes);
    const hostBlocks = cfg.hostBlocks ?? Math.floor((cfg.hostMemBytes ?? 256 * 2 ** 30) / blockBytes);
    posInt('deviceBlocks', deviceBlocks, 0);
    posInt('hostBlocks', hostBlocks, 0, 0);
    const memory = cfg.memory ?? 'baseline';
    if (memory !== 'baseline' && memory !== 'layerkv') throw new RangeError(`SchedulerCore: memory must be 'baseline' or 'layerkv', got ${String(memory)}`);
    this.memory = memory === 'layerkv' ? new LayerKvMemory(cfg.cost, cfg.minDeviceLayers ?? 0) : new BaselineMemory();
    const pm = cfg.prefixMode ?? 'none';
    if (!['none', 'compute-only', 'load-only', 'cake'].includes(pm)) throw new RangeError(`SchedulerCore: prefixMode must be none, compute-only, load-only or cake, got ${String(pm)}`);
    this.prefixMode = pm;
    this.sloAware = cfg.sloAware ?? memory === 'layerkv';
    this.check = cfg.check ?? false;
    const preemption = cfg.preemption ?? 'recompute';
    if (preemption !== 'recompute' && preemption !== 'swap') throw new RangeError(`SchedulerCore: preemption must be 'recompute' or 'swap', got ${String(preemption)}`);
    this.preemption = preemption;
    this.kv = new KvCacheManager({ numLayers: this.numLayers, blockSize: this.blockSize, deviceBlocks, hostBlocks, watermark, recordChanges: cfg.recordBlockChanges ?? true });
    this.name = cfg.name ?? (pm === 'none' ? memory : `${memory}+${pm}`);
  }

  // ---- requests -----------------------------------------------------------------------

  add(req: Request, now: number): void {
    // Not a request at all: there is no id to report a rejection under.
    if (typeof req !== 'object' || req === null) throw new TypeError(`add: request must be an object, got ${show(req)}`);
    const reason = this.validate(req, now);
    if (reason !== null) {
      this.stats.rejected++;
      this.pendingEvents.push({ seq: String(req?.id), kind: 'rejected', at: now, reason });
      return;
    }
    const s: Seq = { req, id: req.id, order: this.orderNo++, status: 'waiting', target: req.promptLen, computed: 0, generated: 0, firstTokenAt: NaN, hold: null, cake: null, admittedOnce: false, hostLayers: [] };
    this.seqs.set(req.id, s);
    this.waiting.push(s);
  }

  private validate(req: Request, now: number): string | null {
    const problem = requestProblem(req);
    if (problem !== null) return problem;
    if (this.seqs.has(req.id)) return `request.id ${req.id} is already in use`;
    if (req.arrival > now + 1e-9) return `arrival ${req.arrival} is after now ${now}`;
    const maxTokens = Math.floor((this.kv.device.numBlocks - this.kv.device.watermarkBlocks) / this.numLayers) * this.blockSize;
    // A sequence that cannot hold all its layers on the device would be preempted forever.
    if (req.promptLen + req.maxNewTokens > maxTokens) {
      return `promptLen + maxNewTokens = ${req.promptLen + req.maxNewTokens} exceeds the ${maxTokens} tokens the device pool holds for one sequence`;
    }
    const p = req.prefix;
    if (p) {
      if (!Number.isInteger(p.chunkTokens) || p.chunkTokens < 1 || p.chunkTokens % this.blockSize !== 0) return `prefix.chunkTokens must be a positive multiple of blockSize ${this.blockSize}, got ${p.chunkTokens}`;
      if (p.storedChunks * p.chunkTokens > req.promptLen) return `prefix.storedChunks * chunkTokens = ${p.storedChunks * p.chunkTokens} exceeds promptLen ${req.promptLen}`;
    }
    return null;
  }

  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0 || this.transfers.size > 0 || this.pendingEvents.length > 0;
  }

  get numWaiting(): number {
    return this.waiting.length;
  }
  get numRunning(): number {
    return this.running.length;
  }
  get transfersInFlight(): number {
    return this.transfers.size;
  }

  // ---- scheduling ---------------------------------------------------------------------

  schedule(now: number): StepPlan {
    const plan: StepPlan = { step: this.stepNo++, compute: [], transfers: [], allocated: [], freed: [], preempted: [] };
    let budget = this.maxBatchedTokens;

    // 1. Decodes first. Iterate over a copy: preemption removes from `running`.
    let streaming: Seq[] | null = null;
    this.h2dPlanned = 0;
    this.freeTimeline = null;
    for (const s of [...this.running]) {
      if (budget === 0) break;
      if (s.status !== 'running' || !this.isDecoding(s) || s.hold!.inflight > 0) continue;
      if (s.hostLayers.length > 0) {
        const p = this.promote(s, plan);
        if (p === 'no') (streaming ??= []).push(s);
        if (p !== 'decode') continue;
      }
      if (!this.growForDecode(s, plan)) continue;
      plan.compute.push({ seq: s.id, phase: 'decode', tokens: 1, cachedBefore: s.computed, emitsToken: true });
      budget--;
    }
    if (streaming) budget = this.streamDecodes(streaming, plan, budget);
    this.promotionDemand = 0;
    if (this.memory.name === 'layerkv') {
      for (const s of this.running) {
        const kv = s.hold?.kv;
        if (!kv) continue;
        if (s.hostLayers.length > 0) this.promotionDemand += this.kv.blocksFor(s.target + 1) * s.hostLayers.length;
        // Also the growth the running sequences will need up to their max tokens: LayerKV
        // can fill the device to the watermark with new prefills' kept layers, and then
        // every decode that crosses a block boundary preempts (recomputes) the newest one.
        // (Bench layerkv, 3K: SLO violations 58.8% -> 48.8%; preemptions still remain from
        // promoted sequences' growth, see bench/groups/50-layerkv.ts.)
        const grow = this.kv.blocksFor(s.req.promptLen + s.req.maxNewTokens) - kv.tables[0].length;
        if (grow > 0) this.promotionDemand += grow * (this.numLayers - s.hostLayers.length);
      }
    }

    // The TPOT-safe step time for SLO-aware chunking: decodes are in, prefills must fit.
    const limit = this.sloAware ? this.stepLimit(now) : Infinity;
    let oldestPrefill = true;

    // 2. Running ordinary prefills.
    for (const s of this.running) {
      if (budget === 0) break;
      if (s.cake || this.isDecoding(s)) continue;
      const want = Math.min(s.target - s.computed, budget);
      const c = this.sizeChunk(plan.compute, s.computed, want, limit, oldestPrefill);
      oldestPrefill = false;
      if (c === 0) continue;
      this.addPrefill(s, c, plan);
      budget -= c;
    }

    // 3. Admissions.
    this.admit(now, plan, budget, limit);
    budget = this.maxBatchedTokens - plan.compute.reduce((a, c) => a + c.tokens, 0);

    // 4. Cake prefix requests: loads regardless, compute from what is left.
    if (this.prefixMode === 'cake') {
      this.planCakeJointly(now);
      this.scheduleCake(now, plan, budget);
    } else {
      for (const s of this.running) {
        if (!s.cake || s.cake.done) continue;
        for (let c = s.cake.nextLoad(now); c >= 0; c = s.cake.nextLoad(now)) this.issuePrefixLoad(s, c, plan, now);
        if (budget === 0) continue;
        const r = s.cake.nextCompute(budget, now);
        if (!r) continue;
        plan.compute.push({ seq: s.id, phase: 'prefill', tokens: r.tokens, cachedBefore: r.start, emitsToken: r.start + r.tokens >= s.target });
        budget -= r.tokens;
      }
    }

    const ch = this.kv.drainChanges();
    plan.allocated = ch.allocated;
    plan.freed = ch.freed;
    return plan;
  }

  private isDecoding(s: Seq): boolean {
    return s.computed >= s.target && s.generated > 0;
  }

  /** Admits waiting requests in FCFS order (TTFT-deadline order when SLO-aware) while
   *  memory, the running cap and (for ordinary prefills) the budget allow. Stops at the first
   *  that does not fit, so a large request at the head is not overtaken forever. */
  private admit(now: number, plan: StepPlan, budget: number, limit: number): void {
    if (this.waiting.length === 0) return;
    if (this.sloAware) this.waiting.sort(byDeadline);
    let admitted = 0;
    for (const s of this.waiting) {
      if (this.running.length >= this.maxRunning) break;
      // A swapped-out sequence (it still holds its KV, on the host) resumes by swap-in; it
      // is at the front of the queue, and waits there until the device has room for it.
      if (s.hold) {
        if (!this.swapIn(s, plan)) break;
        admitted++;
        continue;
      }
      const usesCake = this.usesCake(s);
      if (!usesCake && budget === 0) break;
      const blocksPerLayer = this.kv.blocksFor(s.target);
      let first = 0;
      if (!usesCake) {
        first = this.sizeChunk(plan.compute, 0, Math.min(s.target, budget), limit, this.running.every((r) => r.cake || this.isDecoding(r)));
        if (first === 0) break;
      }
      // Blocks promised to running sequences waiting for promotion are not free to admit.
      const devFree = Math.max(0, this.kv.device.numFree - this.kv.device.watermarkBlocks - this.promotionDemand);
      const tiers = usesCake
        ? blocksPerLayer * this.numLayers <= devFree
          ? new Array<TierName>(this.numLayers).fill('device')
          : null
        : this.memory.layout({
            tokens: s.target,
            blocksPerLayer,
            deviceFree: devFree,
            hostFree: this.kv.host.numFree,
            numLayers: this.numLayers,
            chunkTokens: this.maxBatchedTokens,
          });
      if (!tiers) break;
      let hostCount = 0;
      for (let l = 0; l < this.numLayers; l++) if (tiers[l] === 'host') hostCount++;
      if (this.sloAware && hostCount > 0 && !this.hostAdmissionKeepsTpot(s, blocksPerLayer, hostCount)) break;
      const kv = this.kv.create(s.id, tiers);
      if (!this.kv.grow(kv, s.target, true)) {
        this.kv.free(s.id);
        break;
      }
      if (this.check) this.checkAdmission(s, tiers);
      s.hold = { kv, inflight: 0, dropped: false };
      s.hostLayers = [];
      for (let l = 0; l < this.numLayers; l++) if (tiers[l] === 'host') s.hostLayers.push(l);
      if (hostCount > 0) this.promotionDemand += this.kv.blocksFor(s.target + 1) * hostCount;
      s.status = 'running';
      s.computed = 0;
      s.admittedOnce = true;
      this.running.push(s);
      admitted++;
      if (usesCake) {
        s.cake = this.makeTracker(s);
      } else {
        this.addPrefill(s, first, plan);
        budget -= first;
      }
    }
    if (admitted > 0) this.waiting.splice(0, admitted);
  }

  /**
   * LayerKV's SLO-aware admission for a prefill that leaves layers on the host. Its first
   * token comes at the end of its prefill, but it decodes only once those layers are back on
   * the device (streaming them every step does not hide behind a decode step at long
   * contexts: 8K tokens x 16 host layers is 2 GiB, ~86 ms of PCIe Gen4 per step against a
   * ~60 ms step). Its TPOT is (wait for promotion + (n - 1) steps) / (n - 1), so it keeps
   * its TPOT SLO when the wait is at most (SLO - step) x (n - 1). The wait is the
   * promotion's PCIe time plus the time until enough
   * device blocks have freed for every earlier promotion and its own, assuming the fully
   * device-resident decoding sequences finish after their remaining tokens at the measured
   * step time (max tokens: an upper bound, so the estimate errs towards waiting), minus its
   * own prefill time. Requests without a TPOT SLO are admitted as before.
   */
  private hostAdmissionKeepsTpot(s: Seq, blocksPerLayer: number, hostCount: number): boolean {
    const slo = s.req.tpotSlo;
    const n = s.req.maxNewTokens - s.generated;
    if (slo === undefined || n <= 1) return true;
    const step = this.stepEstimate(s);
    if (step >= slo) return false;
    const keptBlocks = blocksPerLayer * (this.numLayers - hostCount);
    const avail = this.kv.device.numFree - this.kv.device.watermarkBlocks - this.promotionDemand - keptBlocks;
    const need = this.kv.blocksFor(s.target + 1) * hostCount;
    // The promotion's own PCIe time comes on top of the wait for blocks.
    const load = this.cost.transferTime(s.target * this.layerBytesPerToken * hostCount, this.cost.gpu.h2dBandwidth);
    const wait = this.promotionWait(need - avail, step) + load;
    const prefill = this.memory instanceof LayerKvMemory ? this.memory.prefillTime(s.target, this.maxBatchedTokens) : 0;
    return wait - prefill <= (slo - step) * (n - 1);
  }

  /** Step time for a decode: the measured recent steps, or before any, the cost model's. */
  private stepEstimate(s: Seq): number {
    if (this.decodeStepEwma > 0) return this.decodeStepEwma;
    return this.cost.stepTime([{ phase: 'decode', tokens: 1, cachedBefore: s.target }]);
  }

  /** Seconds until `deficit` more device blocks are free, from the fully device-resident
   *  decoding sequences finishing; Infinity when they never free that many. */
  private promotionWait(deficit: number, step: number): number {
    if (deficit <= 0) return 0;
    if (!this.freeTimeline) {
      const ev: { at: number; blocks: number }[] = [];
      for (const r of this.running) {
        if (r.hostLayers.length > 0 || !this.isDecoding(r) || !r.hold) continue;
        ev.push({ at: (r.req.maxNewTokens - r.generated) * step, blocks: this.numLayers * r.hold.kv.tables[0].length });
      }
      ev.sort((a, b) => a.at - b.at);
      const at = new Float64Array(ev.length);
      const cum = new Float64Array(ev.length);
      let c = 0;
      for (let i = 0; i < ev.length; i++) {
        at[i] = ev[i].at;
        cum[i] = c += ev[i].blocks;
      }
      this.freeTimeline = { at, cum };
    }
    const { at, cum } = this.freeTimeline;
    // First index with cum >= deficit (cum is increasing).
    let lo = 0;
    let hi = cum.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] >= deficit) hi = mid;
      else lo = mid + 1;
    }
    return lo < cum.length ? at[lo] : Infinity;
  }

  private usesCake(s: Seq): boolean {
    return this.prefixMode !== 'none' && !!s.req.prefix && s.req.prefix.storedChunks > 0;
  }

  private makeTracker(s: Seq): CakeTracker {
    const p = s.req.prefix!;
    const chunkBytes = this.cost.kvBytes(p.chunkTokens);
    return new CakeTracker({
      promptLen: s.target,
      chunkTokens: p.chunkTokens,
      storedChunks: p.storedChunks,
      mode: this.prefixMode as PrefixMode,
      maxLoadsInFlight: this.maxLoadsInFlight,
      estimates: {
        compute: (start, tokens) => this.cost.prefillChunkTime(tokens, start),
        load: () => this.cost.transferTime(chunkBytes, this.storageBandwidth),
      },
    });
  }

  /** The largest chunk (<= want) whose step stays within `limit`; with `guaranteed`, at
   *  least min(want, minPrefillChunk) so the oldest prefill always moves. */
  private sizeChunk(items: ComputeItem[], cachedBefore: number, want: number, limit: number, guaranteed: boolean): number {
    if (want <= 0) return 0;
    if (limit === Infinity) return want;
    const floor = guaranteed ? Math.min(want, this.minPrefillChunk) : 0;
    const probe: ComputeItem = { seq: '', phase: 'prefill', tokens: want, cachedBefore, emitsToken: false };
    items.push(probe);
    try {
      if (this.cost.stepTime(items) <= limit) return want;
      let lo = floor;
      let hi = want;
      // Step time grows with the chunk; binary search to block granularity.
      while (hi - lo > this.blockSize) {
        const mid = (lo + hi) >> 1;
        probe.tokens = mid;
        if (this.cost.stepTime(items) <= limit) lo = mid;
        else hi = mid;
      }
      return lo;
    } finally {
      items.pop();
    }
  }

  /** The longest step that keeps every decoding request with a TPOT SLO within it: a
   *  request that has emitted n tokens after its first, over e seconds, can take a next
   *  token after T seconds as long as (e + T) / (n + 1) <= SLO. Its accumulated slack is
   *  usable; a step is never held below one SLO, so a request already behind does not
   *  stop all admissions. */
  private stepLimit(now: number): number {
    let limit = Infinity;
    for (const s of this.running) {
      const slo = s.req.tpotSlo;
      if (slo === undefined || !this.isDecoding(s)) continue;
      const n = s.generated - 1;
      const slack = slo * (n + 1) - (now - s.firstTokenAt);
      limit = Math.min(limit, Math.max(slack, slo));
    }
    return limit;
  }

  private addPrefill(s: Seq, tokens: number, plan: StepPlan): void {
    plan.compute.push({ seq: s.id, phase: 'prefill', tokens, cachedBefore: s.computed, emitsToken: s.computed + tokens >= s.target });
    // LayerKV: each host layer's new KV leaves as soon as that layer's compute ends.
    for (const l of s.hostLayers) {
      this.stats.offloads++;
      plan.transfers.push(this.issue(s, { kind: 'offload', channel: 'd2h', bytes: tokens * this.layerBytesPerToken, layers: [l], afterLayer: l }));
    }
  }

  private issue(s: Seq, t: Omit<Transfer, 'id' | 'seq'>, extra: Partial<TransferRec> = {}): Transfer {
    const id = this.nextTransferId++;
    const tr: Transfer = { id, seq: s.id, ...t };
    s.hold!.inflight++;
    this.transfers.set(id, { seq: s, hold: s.hold!, kind: t.kind, ...extra });
    return tr;
  }

  private issuePrefixLoad(s: Seq, chunk: number, plan: StepPlan, now: number): void {
    const p = s.req.prefix!;
    this.stats.prefixLoads++;
    this.storageEnd = Math.max(this.storageEnd, now) + this.chunkLoadTime(s);
    plan.transfers.push(this.issue(s, { kind: 'prefix-load', channel: 'storage', bytes: this.cost.kvBytes(p.chunkTokens), layers: this.allLayers(), chunk }, { chunk, expectAt: this.storageEnd }));
  }

  private chunkLoadTime(s: Seq): number {
    return this.cost.transferTime(this.cost.kvBytes(s.req.prefix!.chunkTokens), this.storageBandwidth);
  }

  /** GPU seconds of a Cake request's last step(s): its uncached suffix, or the recomputed last
   *  token of a fully stored prompt. */
  private cakeSuffixTime(s: Seq, P: number, stored: number): number {
    return P > stored ? this.cost.prefillChunkTime(P - stored, stored) : this.cost.prefillChunkTime(1, P - 1);
  }

  /**
   * Cake's part of a step. Loads first (they run whatever the budget). Then compute, where
   * a step's length matters as much as its order: a request's first token comes at the end
   * of the step holding its last compute, and steps are long (a 4096-token front step on a
   * 16K prompt is a quarter second). So, with several Cake requests in flight:
   *   - a suffix that is ready (prefix KV all in place) runs before any front, whatever the
   *     admission order: it is short and ends a TTFT (shortest job first);
   *   - a step that ends TTFTs carries no Cake front beside them, which would only delay
   *     those first tokens by the front's time, while the front loses one step's fixed cost;
   *   - a front step ends no later than the moment the next waiting request's loads are
   *     expected to land, so that request's suffix is not stuck behind a long front step.
   * The joint planner assumes exactly this (suffixes preempt fronts). With one request these
   * rules change nothing: there is no other front to hold back.
   */
  private scheduleCake(now: number, plan: StepPlan, budget: number): void {
    const cakes: Seq[] = [];
    for (const s of this.running) if (s.cake && !s.cake.done) cakes.push(s);
    for (const s of cakes) for (let c = s.cake!.nextLoad(now); c >= 0; c = s.cake!.nextLoad(now)) this.issuePrefixLoad(s, c, plan, now);
    if (budget === 0 || cakes.length === 0) return;
    const push = (s: Seq, r: { start: number; tokens: number }) => {
      plan.compute.push({ seq: s.id, phase: 'prefill', tokens: r.tokens, cachedBefore: r.start, emitsToken: r.start + r.tokens >= s.target });
      budget -= r.tokens;
    };
    let suffixes = 0;
    if (cakes.length > 1) {
      for (const s of cakes) {
        if (budget === 0) break;
        if (s.cake!.phase !== 'suffix') continue;
        const r = s.cake!.nextCompute(budget, now);
        if (!r) continue;
        push(s, r);
        suffixes++;
      }
      if (suffixes > 0) return;
    }
    // When the first request that waits only for its loads gets them: fronts stop there.
    // That includes a request whose front reaches its loads in this very step.
    const landAt = new Map<Seq, number>();
    if (cakes.length > 1) {
      for (const r of this.transfers.values()) {
        if (r.expectAt === undefined || r.hold.dropped) continue;
        landAt.set(r.seq, Math.max(landAt.get(r.seq) ?? -Infinity, r.expectAt));
      }
    }
    const waitsFor = (s: Seq) => {
      const at = landAt.get(s);
      return at !== undefined && at > now ? at : Infinity;
    };
    let horizon = Infinity;
    for (const s of cakes) if (s.cake!.phase === 'draining') horizon = Math.min(horizon, waitsFor(s));
    for (const s of cakes) {
      if (budget === 0) break;
      const t = s.cake!;
      let cap = budget;
      if (horizon < Infinity && t.phase === 'prefix') {
        cap = this.sizeChunk(plan.compute, t.computedEnd, budget, horizon - now, false);
        if (cap === 0) break;
      }
      const r = t.nextCompute(cap, now);
      if (!r) continue;
      push(s, r);
      if (r.start + r.tokens >= t.loadFrom * t.chunkTokens) horizon = Math.min(horizon, waitsFor(s));
    }
  }

  /**
   * Several Cake requests in flight: one plan for all of them (cake-planner.ts), imposed on
   * their trackers as splits. A lone request keeps its tracker's own planning, which is the
   * single-request oracle; with others in flight that planning assumes the store and the GPU
   * are its own, which is what made Cake lose to both single modes with a few concurrent
   * prefix requests (bench 60-cake, concurrent table).
   */
  private planCakeJointly(now: number): void {
    const cakes: Seq[] = [];
    for (const s of this.running) if (s.cake && !s.cake.done) cakes.push(s);
    // Once planned jointly, a request stays so after the others finish: its tracker's own
    // view (its loads on a free store, its front's pace measured in steps shared with other
    // fronts) is wrong by then, and handing back would re-plan from it.
    if (cakes.length < 2 && !cakes.some((s) => s.cakeSplit !== undefined)) {
      for (const s of cakes) s.cake!.setSplit(null);
      return;
    }
    // When each request's issued loads land, from the store's FIFO expectations.
    const landAt = new Map<Seq, number>();
    let storageFree = now;
    for (const r of this.transfers.values()) {
      if (r.expectAt === undefined || r.hold.dropped) continue;
      landAt.set(r.seq, Math.max(landAt.get(r.seq) ?? -Infinity, r.expectAt));
      storageFree = Math.max(storageFree, r.expectAt);
    }
    const dil = this.cakeEstimated > 0 ? Math.max(1, this.cakeActual / this.cakeEstimated) : 1;
    const jobs: PlanJob[] = [];
    const planned: Seq[] = [];
    const fixed: FixedJob[] = [];
    for (const s of cakes) {
      const t = s.cake!;
      const C = t.chunkTokens;
      const S = t.storedChunks;
      const P = t.promptLen;
      const v = t.planView();
      const suffix = dil * this.cakeSuffixTime(s, P, S * C);
      const loadsLandAt = landAt.get(s) ?? -Infinity;
      if (!v.plannable) {
        fixed.push({ readyAt: Math.max(now, loadsLandAt), suffix: t.phase === 'draining' || t.phase === 'suffix' ? suffix : 0 });
        continue;
      }
      const front = new Float64Array(v.last - v.first + 1);
      for (let k = v.first; k <= v.last; k++) {
        const tokens = k * C - v.front;
        front[k - v.first] = tokens > 0 ? dil * this.cost.prefillChunkTime(tokens, v.front) : 0;
      }
      jobs.push({
        first: v.first,
        last: v.last,
        stored: S,
        front,
        computeAll: v.last === S ? dil * this.cost.prefillChunkTime(P - v.front, v.front) : undefined,
        loadTime: this.chunkLoadTime(s),
        loadsLandAt,
        suffix,
      });
      planned.push(s);
    }
    if (jobs.length === 0) return;
    const plan = planCake({ now, storageFreeAt: storageFree, jobs, fixed, previous: planned.map((s, i) => s.cakeSplit ?? jobs[i].last) });
    planned.forEach((s, i) => {
      s.cakeSplit = plan.splits[i];
      s.cake!.setSplit(plan.splits[i]);
    });
  }

  private allLayersCache: number[] | null = null;
  private allLayers(): number[] {
    return (this.allLayersCache ??= Array.from({ length: this.numLayers }, (_, i) => i));
  }

  /** A slot for the decode's token; preempts the most recently admitted sequence that holds
   *  device blocks while the device is short. False when `s` itself was preempted. */
  private growForDecode(s: Seq, plan: StepPlan): boolean {
    const kv = s.hold!.kv;
    while (!this.kv.grow(kv, s.computed + 1)) {
      // Swapped-out victims free their device blocks only when the copy completes: if those
      // cover the growth, wait a step for them rather than preempt one more sequence (each
      // further victim would free nothing now either, and we would swap out everyone).
      if (this.swapFreeing > 0) {
        const need = this.kv.growthNeeded(kv, s.computed + 1);
        if (need.host <= this.kv.host.numFree && need.device <= this.kv.device.numFree + this.swapFreeing) return false;
      }
      const victim = this.preemptionVictim(s);
      this.preempt(victim, plan);
      if (victim === s) return false;
    }
    return true;
  }

  /**
   * The most recently admitted running sequence whose preemption frees device blocks (`s`
   * itself when it is that one, or when no other is). Under LayerKV the newest admissions
   * often keep every layer on the host while they wait for promotion: recomputing one of
   * them frees no device block and throws away a whole prefill (bench layerkv, 4K: 59 of 65 preemptions were such victims). With every
   * layer on the device (baseline, Cake) the newest sequence always holds device blocks, so
   * this is vLLM's choice unchanged.
   */
  private preemptionVictim(s: Seq): Seq {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const r = this.running[i];
      if (r.hold && this.deviceBlocksOf(r.hold.kv) > 0) return r;
    }
    return s;
  }

  private deviceBlocksOf(kv: SeqKv): number {
    let n = 0;
    for (let l = 0; l < this.numLayers; l++) if (kv.tiers[l] === 'device') n += kv.tables[l].length;
    return n;
  }

  /**
   * LayerKV decode of a sequence with layers on the host. Two ways to get them to the
   * attention kernels: promote (allocate device blocks, load once, free the host copy) or
   * stream (load each host layer into a staging buffer every step, ahead of its use). A
   * promotion costs one streamed step's transfer once; streaming pays it every step, and
   * every sequence in the batch waits when the loads outrun the earlier layers' compute.
   * So: promote whenever the device has the blocks (above the watermark, so running
   * sequences can still grow); otherwise stream only while the loads hide behind the
   * step's compute, or when nothing else would run (so the request cannot stall forever);
   * else the sequence waits a step for blocks to free up. The staging buffer is outside
   * the KV pool, like activations.
   */
  private promote(s: Seq, plan: StepPlan): 'decode' | 'loading' | 'no' {
    const kv = s.hold!.kv;
    const blocks = this.kv.blocksFor(s.computed + 1);
    if (!this.kv.device.canAllocate(blocks * s.hostLayers.length, true)) return 'no';
    // Whether the loads hide behind this step's compute (layer l waits for its own load, and
    // the host layers are spread out, so roughly: all of them within the whole step). If
    // they do, the sequence decodes in this step; if not, gating the step on them would
    // stall every other decode in the batch for the PCIe time, so the loads run on their
    // own and the sequence decodes once they land (it has transfers in flight until then).
    const t = this.cost.transferTime(s.computed * this.layerBytesPerToken * s.hostLayers.length, this.cost.gpu.h2dBandwidth);
    plan.compute.push({ seq: s.id, phase: 'decode', tokens: 1, cachedBefore: s.computed, emitsToken: true });
    const hidden = this.h2dPlanned + t <= this.cost.stepTime(plan.compute);
    plan.compute.pop();
    this.h2dPlanned += t;
    for (const l of s.hostLayers) {
      const mv = this.kv.moveLayer(kv, l, 'device')!;
      this.stats.promotions++;
      plan.transfers.push(
        this.issue(
          s,
          { kind: 'load', channel: 'h2d', bytes: s.computed * this.layerBytesPerToken, layers: [l], ...(hidden ? { beforeLayer: l } : {}), moves: [{ layer: l, from: 'host', to: 'device', pairs: mv.pairs }] },
          { release: { layer: l, tier: mv.from, blocks: mv.source } },
        ),
      );
    }
    s.hostLayers = [];
    return hidden ? 'decode' : 'loading';
  }

  private streamDecodes(seqs: Seq[], plan: StepPlan, budget: number): number {
    let loadTime = this.h2dPlanned;
    for (const s of seqs) {
      if (budget === 0) break;
      // An earlier decode's growth may have preempted it.
      if (s.status !== 'running' || !s.hold) continue;
      const t = this.cost.transferTime(s.computed * this.layerBytesPerToken * s.hostLayers.length, this.cost.gpu.h2dBandwidth);
      plan.compute.push({ seq: s.id, phase: 'decode', tokens: 1, cachedBefore: s.computed, emitsToken: true });
      const hidden = loadTime + t <= this.cost.stepTime(plan.compute);
      plan.compute.pop();
      if (!hidden && plan.compute.length > 0) continue;
      if (!this.growForDecode(s, plan)) continue;
      loadTime += t;
      this.h2dPlanned = loadTime;
      for (const l of s.hostLayers) {
        this.stats.streamedLoads++;
        plan.transfers.push(this.issue(s, { kind: 'load', channel: 'h2d', bytes: s.computed * this.layerBytesPerToken, layers: [l], beforeLayer: l }));
      }
      plan.compute.push({ seq: s.id, phase: 'decode', tokens: 1, cachedBefore: s.computed, emitsToken: true });
      budget--;
    }
    return budget;
  }

  /** Preemption by recompute: the KV is dropped and the sequence rejoins the front of the
   *  queue to prefill its prompt and generated tokens again. With preemption 'swap', a
   *  decoding sequence's KV is swapped out to the host instead where it can be (swapOut). */
  private preempt(s: Seq, plan: StepPlan): void {
    this.stats.preemptions++;
    const i = this.running.indexOf(s);
    if (i >= 0) this.running.splice(i, 1);
    if (!(this.preemption === 'swap' && this.swapOut(s, plan))) {
      this.dropKv(s);
      s.target = s.req.promptLen + s.generated;
      s.computed = 0;
      s.cake = null;
    }
    s.status = 'waiting';
    s.hostLayers = [];
    // Remove any compute already planned for it this step.
    plan.compute = plan.compute.filter((c) => c.seq !== s.id);
    plan.preempted.push(s.id);
    this.pendingEvents.push({ seq: s.id, kind: 'preempted', at: NaN });
    this.waiting.unshift(s);
  }

  /**
   * Swap-out: every device layer moves to host blocks with a 'swap-out' transfer on d2h; the
   * device blocks stay owned by the transfer until it completes (the copy reads them). The
   * sequence keeps its hold, its computed tokens and its generated count, so it resumes by
   * swap-in and never re-prefills. False (the caller recomputes) when:
   *  - it is not decoding: a prefill in progress would resume computing chunks while its
   *    swap-in is still in flight, and its partial KV is cheap to recompute;
   *  - it is a Cake prefix request (Cake's tracker owns its loads; Cake is unchanged);
   *  - it has transfers in flight (offloads or loads still writing its blocks);
   *  - the host has no room for its device blocks (falling back keeps the host tier within
   *    capacity and the preemption still frees the device).
   */
  private swapOut(s: Seq, plan: StepPlan): boolean {
    const h = s.hold;
    if (!h || s.cake || !this.isDecoding(s) || h.inflight > 0) return false;
    const dev = this.deviceBlocksOf(h.kv);
    if (!this.kv.host.canAllocate(dev)) return false;
    const bytes = this.cost.kvBytes(s.computed, 1);
    for (let l = 0; l < this.numLayers; l++) {
      if (h.kv.tiers[l] !== 'device') continue;
      const mv = this.kv.moveLayer(h.kv, l, 'host')!;
      this.stats.swapOuts++;
      plan.transfers.push(
        this.issue(s, { kind: 'swap-out', channel: 'd2h', bytes, layers: [l], moves: [{ layer: l, from: 'device', to: 'host', pairs: mv.pairs }] }, { release: { layer: l, tier: mv.from, blocks: mv.source } }),
      );
    }
    this.swapFreeing += dev;
    return true;
  }

  /**
   * Resumes a swapped-out sequence: device blocks for every layer now, 'swap-in' transfers
   * on h2d, host blocks freed as each completes. Under LayerKV too, rather than resuming
   * with host layers through promotion/streaming: the sequence had all these layers' device
   * blocks when it was preempted, and one path keeps a resumed decode off PCIe every step.
   * It decodes once the loads land (the decode loop skips holds with transfers in flight).
   * False while its swap-out is still in flight (the host copy is not complete) or the
   * device lacks room above the watermark and promised promotions.
   */
  private swapIn(s: Seq, plan: StepPlan): boolean {
    const h = s.hold!;
    if (h.inflight > 0) return false;
    let need = 0;
    for (let l = 0; l < this.numLayers; l++) if (h.kv.tiers[l] === 'host') need += h.kv.tables[l].length;
    if (need > this.kv.device.numFree - this.kv.device.watermarkBlocks - this.promotionDemand) return false;
    const bytes = this.cost.kvBytes(s.computed, 1);
    for (let l = 0; l < this.numLayers; l++) {
      if (h.kv.tiers[l] !== 'host') continue;
      const mv = this.kv.moveLayer(h.kv, l, 'device')!;
      this.stats.swapIns++;
      plan.transfers.push(
        this.issue(s, { kind: 'swap-in', channel: 'h2d', bytes, layers: [l], moves: [{ layer: l, from: 'host', to: 'device', pairs: mv.pairs }] }, { release: { layer: l, tier: mv.from, blocks: mv.source } }),
      );
    }
    s.status = 'running';
    s.hostLayers = [];
    this.running.push(s);
    return true;
  }

  private dropKv(s: Seq): void {
    const h = s.hold;
    s.hold = null;
    if (!h) return;
    h.dropped = true;
    this.kv.detach(s.id);
    if (h.inflight === 0) this.releaseHolding(h);
  }

  private releaseHolding(h: Holding): void {
    const kv = h.kv;
    for (let l = 0; l < this.numLayers; l++) this.kv.release(kv.seq, l, kv.tiers[l], kv.tables[l]);
    kv.tables.forEach((t) => (t.length = 0));
  }

  // ---- results ------------------------------------------------------------------------

  onResult(plan: StepPlan, result: StepResult): SeqEvent[] {
    const events = this.pendingEvents;
    this.pendingEvents = [];
    for (const e of events) if (Number.isNaN(e.at)) e.at = result.start;
    for (const d of result.transfersDone) this.transferDone(d.id, d.at);
    if (plan.compute.some((c) => c.phase === 'decode')) {
      const d = result.end - result.start;
      this.decodeStepEwma = this.decodeStepEwma === 0 ? d : 0.9 * this.decodeStepEwma + 0.1 * d;
    }
    const at = result.end;
    if (this.prefixMode === 'cake') this.measureCakeFronts(plan, result);
    for (const c of plan.compute) {
      const s = this.seqs.get(c.seq);
      if (!s || s.status !== 'running') continue;
      if (s.cake) {
        s.cake.onComputed(c.cachedBefore, c.tokens);
        s.computed = s.cake.computedEnd;
        if (s.cake.done) {
          this.stats.loadedTokens += s.cake.loadedTokens;
          this.stats.computedPrefixTokens += s.cake.computedTokens;
          s.computed = s.target;
          s.cake = null;
          this.emit(s, at, events);
        }
        continue;
      }
      s.computed += c.tokens;
      if (c.emitsToken) this.emit(s, at, events);
    }
    if (this.check) this.checkInvariants();
    return events;
  }

  /** Compares a step that ran Cake fronts with what the cost model says those ranges take
   *  alone (the planner's unit), so the planner sees the fronts' real pace on a busy GPU. */
  private measureCakeFronts(plan: StepPlan, result: StepResult): void {
    let est = 0;
    for (const c of plan.compute) {
      if (c.phase === 'prefill' && this.seqs.get(c.seq)?.cake) est += this.cost.prefillChunkTime(c.tokens, c.cachedBefore);
    }
    if (est <= 0) return;
    // EWMA over steps: the mix of neighbours changes as they finish and arrive.
    this.cakeActual = 0.8 * this.cakeActual + 0.2 * (result.end - result.start);
    this.cakeEstimated = 0.8 * this.cakeEstimated + 0.2 * est;
  }

  private emit(s: Seq, at: number, events: SeqEvent[]): void {
    if (s.generated === 0) {
      s.firstTokenAt = at;
      events.push({ seq: s.id, kind: 'first-token', at });
    } else {
      events.push({ seq: s.id, kind: 'token', at });
    }
    s.generated++;
    if (s.generated >= s.req.maxNewTokens) {
      s.status = 'finished';
      const i = this.running.indexOf(s);
      if (i >= 0) this.running.splice(i, 1);
      this.dropKv(s);
      this.seqs.delete(s.id);
      events.push({ seq: s.id, kind: 'finished', at });
    }
  }

  private transferDone(id: number, at: number): void {
    const rec = this.transfers.get(id);
    if (!rec) throw new Error(`SchedulerCore.onResult: transfer ${id} is not in flight`);
    this.transfers.delete(id);
    if (rec.kind === 'swap-out') this.swapFreeing -= rec.release!.blocks.length;
    if (rec.release) this.kv.release(rec.seq.id, rec.release.layer, rec.release.tier, rec.release.blocks);
    if (rec.expectAt !== undefined) {
      // The store is FIFO: every load behind this one shifts by the same error.
      const delta = at - rec.expectAt;
      let behind = false;
      for (const r of this.transfers.values()) {
        if (r.expectAt !== undefined && r.expectAt > rec.expectAt) {
          r.expectAt += delta;
          behind = true;
        }
      }
      this.storageEnd = behind ? this.storageEnd + delta : at;
    }
    const h = rec.hold;
    h.inflight--;
    if (h.dropped) {
      if (h.inflight === 0) this.releaseHolding(h);
      return;
    }
    if (rec.kind === 'prefix-load' && rec.seq.cake) rec.seq.cake.onLoaded(rec.chunk!, at);
  }

  // ---- invariants ---------------------------------------------------------------------

  private checkAdmission(s: Seq, tiers: TierName[]): void {
    // FCFS (or deadline order) among first admissions: nobody overtakes an older request.
    // (SLO-aware admission orders by deadline, which a later arrival may precede.)
    if (!s.admittedOnce && !this.sloAware) {
      if (s.order < this.lastAdmitKey) throw new Error(`invariant: ${s.id} admitted out of FCFS order`);
      this.lastAdmitKey = s.order;
    }
    if (this.memory instanceof LayerKvMemory && !this.usesCake(s)) {
      const keep = tiers.filter((t) => t === 'device').length;
      const c = this.memory.constraint(s.target, this.numLayers, keep, this.maxBatchedTokens);
      if (keep < this.numLayers && c.offload > c.compute * (1 + 1e-9)) {
        throw new Error(`invariant: ${s.id} offloads ${c.offload}s of KV behind ${c.compute}s of prefill`);
      }
    }
  }

  /** Every block is owned once: by a table of a live or dropped holding, or by a transfer
   *  about to release it; the pools' used counts match. Throws on a violation. */
  checkInvariants(): void {
    const marks = { device: new Uint8Array(this.kv.device.numBlocks), host: new Uint8Array(this.kv.host.numBlocks) };
    const count = { device: 0, host: 0 };
    const own = (tier: TierName, b: number, who: string) => {
      if (marks[tier][b]) throw new Error(`invariant: ${tier} block ${b} owned twice (${who})`);
      marks[tier][b] = 1;
      count[tier]++;
    };
    const holds = new Set<Holding>();
    for (const s of this.running) if (s.hold) holds.add(s.hold);
    // Swapped-out sequences wait with their KV on the host.
    for (const s of this.waiting) if (s.hold) holds.add(s.hold);
    for (const r of this.transfers.values()) {
      holds.add(r.hold);
      if (r.release) for (const b of r.release.blocks) own(r.release.tier, b, `transfer of ${r.seq.id}`);
    }
    for (const h of holds) {
      for (let l = 0; l < this.numLayers; l++) for (const b of h.kv.tables[l]) own(h.kv.tiers[l], b, `${h.kv.seq} layer ${l}`);
    }
    for (const tier of ['device', 'host'] as const) {
      const pool = this.kv.pool(tier);
      if (pool.numUsed > pool.numBlocks) throw new Error(`invariant: ${tier} pool over capacity`);
      if (count[tier] !== pool.numUsed) throw new Error(`invariant: ${tier} pool has ${pool.numUsed} blocks in use, ${count[tier]} owned`);
    }
  }
}

function deadline(s: Seq): number {
  return s.req.arrival + (s.req.ttftSlo ?? 1e9);
}

function byDeadline(a: Seq, b: Seq): number {
  // Preempted sequences keep their place at the front.
  if (a.admittedOnce !== b.admittedOnce) return a.admittedOnce ? -1 : 1;
  return deadline(a) - deadline(b) || a.order - b.order;
}
