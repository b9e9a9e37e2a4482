// The scheduler: continuous batching in the style of vLLM v1. It holds the waiting queue and
// the running set and turns them into one StepPlan per step, composed from parts with one job
// each: a placement policy (baseline, or LayerKV's per-layer tiers), preemption, SLO-aware
// step sizing, and the prefix coordinator (Cake and its single-mode baselines).
//
// A step, in order:
//   1. decodes of running requests, one token each, growing their tables a block at a time
//      and preempting the newest request when the device is short;
//   2. chunks of running prefills under the token budget;
//   3. admissions from the queue (FCFS; SLO-aware admission orders by TTFT deadline and sizes
//      chunks so decoding requests keep their TPOT SLO);
//   4. prefix requests: their loads regardless of the budget, their compute from what is left.
// Before all of these, saves of full prompt chunks computed in earlier steps (cake/saver.ts),
// so that blocks a request let go of reach the store before anything reuses them.
import type { CostModel } from '../cost/cost-model.js';
import { checkCostModel } from '../cost/cost-model.js';
import type { SeqEvent, FinishReason } from '../contract/events.js';
import type { ComputeItem, SeqId, StepPlan, StepResult, TierName } from '../contract/plan.js';
import type { Request } from '../contract/request.js';
import type { Scheduler as SchedulerContract } from '../contract/scheduler.js';
import { KVCacheManager } from '../kv/kv-cache-manager.js';
import { PrefixCoordinator } from './cake/coordinator.js';
import { PrefixSaver } from './cake/saver.js';
import type { PrefixMode } from './cake/tracker.js';
import { emptyStats, type SchedCore, type SchedulerStats } from './core.js';
import { checkBlockOwnership } from './invariants.js';
import { BaselinePlacement } from './policy/baseline.js';
import { LayerKvPlacement } from './policy/layerkv.js';
import type { PlacementPolicy } from './policy/placement.js';
import { SloStepSizer } from './policy/slo.js';
import { Preemption, type PreemptionMode } from './preemption.js';
import { RequestQueue } from './request-queue.js';
import { SeqState } from './request-state.js';
import { StepBuilder } from './step-builder.js';
import { TransferTable } from './transfers.js';
import { validateRequest } from './validate.js';
import { show } from '../util/show.js';

export interface SchedulerConfig {
  /** Cost model of the deployment: sizes pools, predicts step and transfer times. */
  cost: CostModel;
  /** Where a request's layers live: all on the device, or LayerKV's per-layer tiers. */
  placement?: 'baseline' | 'layerkv';
  /** What to do with a stored prompt prefix ('none': compute everything). */
  prefix?: 'none' | PrefixMode;
  /** Tokens per block (16). */
  blockSize?: number;
  /** Device layer-blocks (default: cost.deviceKvBytes / bytes of one layer-block). */
  deviceBlocks?: number;
  /** Host layer-blocks (default: hostMemBytes / bytes of one layer-block). */
  hostBlocks?: number;
  /** Host memory for offloaded KV, bytes (256 GiB). */
  hostMemBytes?: number;
  /** Token budget per step (2048). */
  maxBatchedTokens?: number;
  /** Running requests at most (256). */
  maxRunning?: number;
  /** Device fraction admissions leave free (0.01). */
  watermark?: number;
  /** SLO-aware admission and step sizing (default on for layerkv). */
  sloAware?: boolean;
  /** LayerKV: never keep fewer layers than this on the device (0). */
  minDeviceLayers?: number;
  /** LayerKV: staging sets a request with host layers computes on (2). */
  stagingSets?: number;
  /** LayerKV: fraction of the device pool kept for staging sets, which tables never take
   *  (0.05; 0 for the baseline, which stages nothing). */
  stagingReserve?: number;
  /** Smallest chunk the oldest running prefill gets when TPOT slack is exhausted (256). */
  minPrefillChunk?: number;
  /** Prefix loads in flight per request (default: unbounded; the split is re-solved every step). */
  maxLoadsInFlight?: number;
  /** Prefix-store read bandwidth for the split estimates, bytes/s, or a function returning a
   *  measured estimate (default: the cost model's storage channel). */
  storageBandwidth?: number | (() => number);
  /** Cake: pin every prefix request's split at chunk k (chunks [0, k) computed, the rest
   *  loaded; clamped to its stored chunks). Tests and ablations; default: planned. */
  fixedSplit?: number;
  /** Save the full prompt chunks prefills compute to the prefix store ('prefix-save'
   *  transfers), for requests that carry chunk keys (default false). */
  savePrefixes?: boolean;
  /** Prefix saves in flight at most (4). */
  maxSavesInFlight?: number;
  /** Record table updates in plans (true; an executor that moves real bytes needs them). */
  recordTables?: boolean;
  /** How a preempted request gives up its device blocks ('recompute'); see preemption.ts. */
  preemption?: PreemptionMode;
  /** Check block ownership after every step (tests). */
  check?: boolean;
  name?: string;
}

export class Scheduler implements SchedulerContract, SchedCore {
  readonly name: string;
  readonly cost: CostModel;
  readonly kv: KVCacheManager;
  readonly numLayers: number;
  readonly blockSize: number;
  readonly blockBytes: number;
  readonly maxBatchedTokens: number;
  readonly maxRunning: number;
  readonly sloAware: boolean;
  readonly stats: SchedulerStats = emptyStats();
  readonly running: SeqState[] = [];
  readonly queue = new RequestQueue();
  readonly transfers: TransferTable;
  readonly placement: PlacementPolicy;
  readonly prefix: PrefixCoordinator | null;
  readonly saver: PrefixSaver | null;
  readonly preemption: Preemption;
  private readonly slo: SloStepSizer | null;
  private readonly check: boolean;
  private readonly seqs = new Map<SeqId, SeqState>();
  private pending: SeqEvent[] = [];
  private ended: SeqId[] = [];
  private stepNo = 0;
  private orderNo = 0;
  private lastAdmitted = -Infinity;
  private lastCompute = -Infinity;
  /** Device blocks running requests' promotions and growth will need (this step's). */
  private reserved = 0;

  constructor(cfg: SchedulerConfig) {
    if (!cfg || typeof cfg !== 'object') throw new TypeError('Scheduler: config object required');
    const posInt = (name: string, v: number | undefined, d: number, min = 1): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < min) throw new RangeError(`Scheduler: ${name} must be an integer >= ${min}, got ${x}`);
      return x;
    };
    this.cost = checkCostModel('Scheduler', cfg.cost);
    this.numLayers = this.cost.numLayers;
    this.blockSize = posInt('blockSize', cfg.blockSize, 16);
    this.maxBatchedTokens = posInt('maxBatchedTokens', cfg.maxBatchedTokens, 2048);
    this.maxRunning = posInt('maxRunning', cfg.maxRunning, 256);
    const minPrefillChunk = posInt('minPrefillChunk', cfg.minPrefillChunk, 256);
    const watermark = cfg.watermark ?? 0.01;
    if (!(watermark >= 0 && watermark < 1)) throw new RangeError(`Scheduler: watermark must be in [0, 1), got ${watermark}`);
    this.blockBytes = this.cost.kvBytesPerTokenLayer * this.blockSize;
    const hostMem = cfg.hostMemBytes ?? 256 * 2 ** 30;
    if (!(hostMem >= 0 && Number.isFinite(hostMem))) throw new RangeError(`Scheduler: hostMemBytes must be a finite number >= 0, got ${hostMem}`);
    const deviceBlocks = posInt('deviceBlocks', cfg.deviceBlocks, Math.floor(this.cost.deviceKvBytes / this.blockBytes), 0);
    const hostBlocks = posInt('hostBlocks', cfg.hostBlocks, Math.floor(hostMem / this.blockBytes), 0);
    const placement = cfg.placement ?? 'baseline';
    if (placement !== 'baseline' && placement !== 'layerkv') throw new RangeError(`Scheduler: placement must be 'baseline' or 'layerkv', got ${String(placement)}`);
    const pm = cfg.prefix ?? 'none';
    if (!['none', 'compute-only', 'load-only', 'cake'].includes(pm)) throw new RangeError(`Scheduler: prefix must be none, compute-only, load-only or cake, got ${String(pm)}`);
    const preemption = cfg.preemption ?? 'recompute';
    if (preemption !== 'recompute' && preemption !== 'swap') throw new RangeError(`Scheduler: preemption must be 'recompute' or 'swap', got ${String(preemption)}`);
    const maxLoads = cfg.maxLoadsInFlight === undefined ? undefined : posInt('maxLoadsInFlight', cfg.maxLoadsInFlight, 2);
    const reserve = cfg.stagingReserve ?? (placement === 'layerkv' ? 0.05 : 0);
    if (!(reserve >= 0 && reserve < 1)) throw new RangeError(`Scheduler: stagingReserve must be a fraction in [0, 1), got ${reserve}`);
    this.kv = new KVCacheManager({ numLayers: this.numLayers, blockSize: this.blockSize, deviceBlocks, hostBlocks, watermark, recordTables: cfg.recordTables ?? true, stagingReserve: Math.floor(deviceBlocks * reserve) });
    this.transfers = new TransferTable(this.kv);
    this.placement = placement === 'layerkv' ? new LayerKvPlacement(this, { minDeviceLayers: cfg.minDeviceLayers, stagingSets: cfg.stagingSets }) : new BaselinePlacement(this);
    this.saver = cfg.savePrefixes ? new PrefixSaver(this, { maxInFlight: cfg.maxSavesInFlight }) : null;
    this.prefix =
      pm === 'none'
        ? null
        : new PrefixCoordinator(this, { mode: pm, maxLoadsInFlight: maxLoads, storageBandwidth: cfg.storageBandwidth, fixedSplit: cfg.fixedSplit, onLoadFailed: (s, chunk) => this.saver?.loadFailed(s, chunk) });
    this.sloAware = cfg.sloAware ?? placement === 'layerkv';
    this.slo = this.sloAware ? new SloStepSizer(this.blockSize, minPrefillChunk) : null;
    this.preemption = new Preemption(this, preemption, {
      isPrefixRequest: (s) => this.prefix?.owns(s) ?? false,
      event: (e) => this.pending.push(e),
    });
    this.check = cfg.check ?? false;
    this.name = cfg.name ?? (pm === 'none' ? placement : `${placement}+${pm}`);
  }

  // ---- requests -----------------------------------------------------------------------

  add(req: Request, now: number): void {
    // Not a request at all: there is no id to report a rejection under.
    if (typeof req !== 'object' || req === null) throw new TypeError(`add: request must be an object, got ${show(req)}`);
    const reason = validateRequest(req, now, { seqs: this.seqs, kv: this.kv, numLayers: this.numLayers });
    if (reason !== null) {
      this.stats.rejected++;
      this.pending.push({ seq: String((req as Request | null)?.id), kind: 'rejected', at: now, reason });
      return;
    }
    const s = new SeqState(req, this.orderNo++);
    this.seqs.set(req.id, s);
    this.queue.push(s);
  }

  abort(seq: SeqId, reason = 'aborted by the caller'): boolean {
    const s = this.seqs.get(seq);
    if (!s) return false;
    this.queue.remove(s);
    const i = this.running.indexOf(s);
    if (i >= 0) this.running.splice(i, 1);
    this.dropKv(s);
    this.end(s, 'aborted');
    this.stats.aborted++;
    this.pending.push({ seq, kind: 'aborted', at: NaN, reason });
    return true;
  }

  hasWork(): boolean {
    // Frees and ended requests not yet told to the executor take one more (empty) plan.
    return this.queue.length > 0 || this.running.length > 0 || this.transfers.size > 0 || this.pending.length > 0 || this.ended.length > 0 || this.kv.hasRecords;
  }

  get numWaiting(): number {
    return this.queue.length;
  }
  get numRunning(): number {
    return this.running.length;
  }
  get transfersInFlight(): number {
    return this.transfers.size;
  }
  /** A live request's state (undefined once it ended). */
  request(seq: SeqId): SeqState | undefined {
    return this.seqs.get(seq);
  }

  // ---- SchedCore ----------------------------------------------------------------------

  decodeItem(s: SeqState): ComputeItem {
    const item: ComputeItem = { seq: s.id, phase: 'decode', cachedBefore: s.computed, tokens: 1, emitsToken: true };
    const ids = s.tokenIds(s.computed, 1);
    if (ids) item.tokenIds = ids;
    return item;
  }

  prefillItem(s: SeqState, tokens: number, cachedBefore = s.computed): ComputeItem {
    const item: ComputeItem = { seq: s.id, phase: 'prefill', cachedBefore, tokens, emitsToken: cachedBefore + tokens >= s.target };
    const ids = s.tokenIds(cachedBefore, tokens);
    if (ids) item.tokenIds = ids;
    return item;
  }

  dropKv(s: SeqState): void {
    this.placement.forget(s);
    this.prefix?.detach(s);
    const h = s.hold;
    s.hold = null;
    if (!h) return;
    h.dropped = true;
    this.kv.drop(s.id);
    this.transfers.releaseIfIdle(h);
  }

  // ---- scheduling ---------------------------------------------------------------------

  schedule(now: number): StepPlan {
    const b = new StepBuilder(this.stepNo++, this.maxBatchedTokens, this.cost);
    b.plan.ended = this.ended;
    this.ended = [];
    this.placement.beginStep(b);
    this.saver?.issue(b);

    // 1. Decodes. Over a copy: preemption removes from `running`.
    const streaming: SeqState[] = [];
    const grow = (s: SeqState) => this.preemption.growForDecode(s, b);
    for (const s of [...this.running]) {
      if (b.budget === 0) break;
      if (s.status !== 'decoding' || s.hold!.waits > 0) continue;
      if (s.hostLayers.length > 0) {
        const d = this.placement.decodeHostLayers(s, b);
        if (d === 'stream') streaming.push(s);
        if (d !== 'now') continue;
      }
      if (!grow(s)) continue;
      b.add(this.decodeItem(s));
    }
    if (streaming.length > 0) this.placement.streamDecodes(streaming, b, grow);
    this.reserved = this.placement.reserved(this.running);

    // The TPOT-safe step time for SLO-aware chunking: decodes are in, prefills must fit.
    const limit = this.slo ? this.slo.stepLimit(now, this.running) : Infinity;

    // 2. Running prefills.
    let oldest = true;
    for (const s of this.running) {
      if (b.budget === 0) break;
      if (s.status !== 'prefilling' || this.prefix?.owns(s)) continue;
      const want = Math.min(s.target - s.computed, b.budget);
      const c = this.slo ? this.slo.sizeChunk(b, s.computed, want, limit, oldest) : want;
      oldest = false;
      if (c === 0) continue;
      this.placement.addPrefill(s, c, b);
    }

    // 3. Admissions.
    this.admit(b, limit);

    // 4. Prefix requests.
    this.prefix?.schedule(now, b);

    this.unstick(b);
    const d = this.kv.drain();
    b.plan.tables = d.tables;
    b.plan.freed = d.freed;
    b.plan.staged = d.staged;
    b.plan.landing = d.landing;
    return b.plan;
  }

  /** Admits queued requests in order while memory, the running cap and (for ordinary
   *  prefills) the budget allow. Stops at the first that does not fit, so a large request at
   *  the head is not overtaken forever. */
  private admit(b: StepBuilder, limit: number): void {
    if (this.queue.length === 0) return;
    if (this.sloAware) this.queue.sortByDeadline();
    let admitted = 0;
    for (const s of this.queue) {
      if (this.running.length >= this.maxRunning) break;
      // A swapped-out request still holds its KV, on the host: it resumes by swap-in.
      if (s.status === 'swapped') {
        if (!this.preemption.swapIn(s, b, this.reserved)) break;
        admitted++;
        continue;
      }
      const viaPrefix = this.prefix?.uses(s) ?? false;
      if (!viaPrefix && b.budget === 0) break;
      const bpl = this.kv.blocksFor(s.target);
      let first = 0;
      if (!viaPrefix) {
        const want = Math.min(s.target, b.budget);
        first = this.slo ? this.slo.sizeChunk(b, 0, want, limit, this.running.every((r) => r.status === 'decoding' || this.prefix?.owns(r))) : want;
        if (first === 0) break;
      }
      const devFree = Math.max(0, this.kv.deviceAdmissible - this.reserved);
      const layout = viaPrefix
        ? bpl * this.numLayers <= devFree
          ? { tiers: new Array<TierName>(this.numLayers).fill('device'), stagingSets: 0 }
          : null
        : this.placement.layout({ tokens: s.target, blocksPerLayer: bpl, deviceFree: devFree, stagingFree: this.kv.stagingFree, hostFree: this.kv.host.numFree, numLayers: this.numLayers, chunkTokens: this.maxBatchedTokens });
      if (!layout) break;
      const hostLayers: number[] = [];
      layout.tiers.forEach((t, l) => t === 'host' && hostLayers.push(l));
      if (this.sloAware && hostLayers.length > 0 && !this.placement.admitsWithHostLayers(s, bpl, hostLayers.length, devFree)) break;
      const kv = this.kv.create(s.id, layout.tiers);
      if (!this.kv.allocateSlots(kv, s.target, true) || !this.kv.allocStaging(kv, layout.stagingSets, bpl)) {
        throw new Error(`Scheduler: admitting ${s.id} failed to allocate the blocks its layout was sized for`);
      }
      if (this.check) this.checkAdmission(s, layout.tiers);
      s.hold = { kv, inflight: 0, waits: 0, owed: 0, dropped: false };
      s.hostLayers = hostLayers;
      if (hostLayers.length > 0) this.reserved += this.kv.blocksFor(s.target + 1) * hostLayers.length;
      s.status = 'prefilling';
      s.computed = 0;
      s.admittedOnce = true;
      this.running.push(s);
      admitted++;
      if (viaPrefix) this.prefix!.attach(s);
      else this.placement.addPrefill(s, first, b);
    }
    this.queue.shift(admitted);
  }

  /** Every running request waits on device blocks no one will free (decodes with host layers
   *  that can neither be promoted nor streamed, nothing in flight): free some by preempting
   *  the newest request that holds device blocks. */
  private unstick(b: StepBuilder): void {
    if (b.plan.compute.length > 0 || b.plan.transfers.length > 0 || this.transfers.size > 0) return;
    const stuck = this.running.find((s) => s.status === 'decoding' && s.hostLayers.length > 0);
    if (stuck) this.preemption.preempt(this.preemption.victim(stuck), b);
  }

  get lastComputeEnd(): number {
    return this.lastCompute;
  }

  // ---- results ------------------------------------------------------------------------

  onResult(plan: StepPlan, result: StepResult): SeqEvent[] {
    const events = this.pending;
    this.pending = [];
    for (const e of events) if (Number.isNaN(e.at)) e.at = result.start;
    for (const d of result.transfersDone) this.transfers.complete(d.id, d.at, d.error);
    let decoded = false;
    let emitting = 0;
    for (const c of plan.compute) {
      if (c.phase === 'decode') decoded = true;
      if (c.emitsToken) emitting++;
    }
    this.placement.observeStep(decoded, result.end - result.start);
    this.prefix?.observe(plan, result);
    if (plan.compute.length > 0) this.lastCompute = result.end;
    const sampled = result.sampled;
    if (!Array.isArray(sampled) || sampled.length !== emitting) {
      throw new Error(`Scheduler.onResult: step ${plan.step} has ${emitting} emitting items but the result samples ${Array.isArray(sampled) ? sampled.length : 'no'} tokens`);
    }
    const at = result.end;
    let k = 0;
    for (const c of plan.compute) {
      const token = c.emitsToken ? sampled[k++] : undefined;
      if (token !== undefined && token.seq !== c.seq) throw new Error(`Scheduler.onResult: sampled token ${k - 1} is for ${token.seq}, plan item is ${c.seq}`);
      const s = this.seqs.get(c.seq);
      // Aborted or preempted while the step ran: its output is not wanted.
      if (!s || !s.running) continue;
      if (this.prefix?.owns(s)) {
        const done = this.prefix.onComputed(s, c.cachedBefore, c.tokens);
        this.saver?.afterCompute(s);
        if (done) this.emit(s, at, token!.token, events);
        continue;
      }
      s.computed += c.tokens;
      if (c.phase === 'prefill') this.saver?.afterCompute(s);
      if (token) this.emit(s, at, token.token, events);
    }
    if (this.check) checkBlockOwnership(this, this.saver?.owingHolds());
    return events;
  }

  private emit(s: SeqState, at: number, token: number, events: SeqEvent[]): void {
    if (s.generated === 0) {
      s.firstTokenAt = at;
      const e: SeqEvent = { seq: s.id, kind: 'first-token', at, token };
      if (s.req.prefix) e.cachedTokens = s.loadedTokens;
      events.push(e);
    } else {
      events.push({ seq: s.id, kind: 'token', at, token });
    }
    s.output.push(token);
    if (s.status === 'prefilling') s.status = 'decoding';
    const stop = s.req.stopTokenIds?.includes(token) ?? false;
    if (stop || s.generated >= s.req.maxNewTokens) this.finish(s, at, stop ? 'stop' : 'length', events);
  }

  private finish(s: SeqState, at: number, reason: FinishReason, events: SeqEvent[]): void {
    const i = this.running.indexOf(s);
    if (i >= 0) this.running.splice(i, 1);
    this.dropKv(s);
    this.end(s, 'finished');
    events.push({ seq: s.id, kind: 'finished', at, finishReason: reason });
  }

  private end(s: SeqState, status: 'finished' | 'aborted'): void {
    this.saver?.forget(s);
    s.status = status;
    this.seqs.delete(s.id);
    this.ended.push(s.id);
  }

  // ---- invariants ---------------------------------------------------------------------

  private checkAdmission(s: SeqState, tiers: readonly TierName[]): void {
    // FCFS among first admissions: nobody overtakes an older request (SLO-aware admission
    // orders by deadline, which a later arrival may precede).
    if (!s.admittedOnce && !this.sloAware) {
      if (s.order < this.lastAdmitted) throw new Error(`invariant: ${s.id} admitted out of FCFS order`);
      this.lastAdmitted = s.order;
    }
    if (!this.prefix?.uses(s)) {
      const v = this.placement.checkLayout(s, tiers);
      if (v) throw new Error(`invariant: ${v}`);
    }
  }

  /** Every block in use is owned exactly once; throws on a violation. */
  checkInvariants(): void {
    checkBlockOwnership(this, this.saver?.owingHolds());
  }
}
