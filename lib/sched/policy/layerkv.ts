// LayerKV (arXiv 2410.00428) on real memory: per-layer placement with host offload.
//
// Admission. A prefill is admitted when the device has blocks for the layers it keeps plus a
// small staging area; its other layers' tables live on the host. The fewest layers kept is
// the smallest k whose host layers' copies hide behind the prefill's compute (offloads on
// d2h and, for chunked prefills, reloads on h2d). Above that the policy keeps as many layers
// as the device has blocks for: a kept layer costs nothing now and saves a load at decode.
// Kept layers are spread out (interleavedKeep), so every host layer has compute after it to
// hide its copy behind.
//
// A host layer computing. Attention reads device blocks only, so a host layer computes on a
// staging set: device blocks holding that layer's positions [0, end) for the step. The
// request owns `stagingSets` sets (2 by default), each blocksFor(target) blocks, from its
// admission to the end of its prefill; its host layers use them in turn (host layer i uses
// set i mod sets). For each host layer l of a chunk [n, n + c):
//   - reload (h2d, before layer l): the layer's earlier KV, host blocks [0, blocksFor(n)),
//     into the set; only for a later chunk of a chunked prefill (n > 0);
//   - compute layer l: append the chunk's KV into the set, attend over it;
//   - offload (d2h, after layer l): blocks [floor(n / bs), blocksFor(n + c)) of the set to
//     the layer's host table (the block holding position n goes again whole);
//   - reuse: the set's next user waits for this offload (its reload waits for it, or, with
//     no reload, its layer's compute does).
// The sets are given back when the last chunk's offloads complete.
//
// Decoding with host layers. Either promote (move the host layers to the device for good:
// one load each, then ordinary decodes) or stream (reload each host layer into staging every
// step, append the new token there and offload its block back). Promotion costs one streamed
// step's transfer once; streaming pays it every step and holds staging sets. So: promote when
// the device has the blocks (above the watermark, so running requests can still grow);
// otherwise stream only while the loads hide behind the step's compute, or when nothing else
// would run (so the request cannot wait forever); else it waits a step for blocks to free up.
//
// SLO-aware admission (with a TPOT SLO): a prefill admitted with host layers decodes only
// after its promotion, so it is admitted only when the wait for promotion keeps its TPOT.
import type { CostModel } from '../../cost/cost-model.js';
import type { BlockMove, StagedLayer, TierName } from '../../contract/plan.js';
import type { SchedCore } from '../core.js';
import type { SeqState } from '../request-state.js';
import type { StepBuilder } from '../step-builder.js';
import type { TransferRec } from '../transfers.js';
import type { HostDecode, Layout, LayoutQuery, PlacementPolicy } from './placement.js';

/** Which k of L layers stay on the device: spread evenly, so between two kept layers sit
 *  host layers whose copies overlap the kept layers' compute. Layer L-1 is kept first: its
 *  offload could only overlap the next step. */
export function interleavedKeep(numLayers: number, keep: number): boolean[] {
  const out = new Array<boolean>(numLayers).fill(false);
  for (let l = 0; l < numLayers; l++) out[l] = Math.floor(((l + 1) * keep) / numLayers) > Math.floor((l * keep) / numLayers);
  return out;
}

export interface LayerKvOptions {
  /** Never keep fewer layers than this on the device (0). */
  minDeviceLayers?: number;
  /** Staging sets a request with host layers computes on (2): more sets let more copies run
   *  ahead, each costs blocksFor(target) device blocks. */
  stagingSets?: number;
}

export class LayerKvPlacement implements PlacementPolicy {
  readonly name = 'layerkv' as const;
  readonly minDeviceLayers: number;
  readonly stagingSets: number;
  private readonly core: SchedCore;
  private readonly cost: CostModel;
  private readonly minKeepCache = new Map<number, number>();
  /** Per request: the last transfer that reads each staging set (its next user waits). */
  private readonly lastUse = new Map<SeqState, (TransferRec | undefined)[]>();
  /** Per request and layer: the last offload into its host table (whatever reads the table
   *  next waits for it). */
  private readonly lastOffload = new Map<SeqState, (TransferRec | undefined)[]>();
  /** h2d seconds planned so far this step (promotions and streamed loads share PCIe). */
  private h2dPlanned = 0;
  /** Measured seconds of recent steps that carried decodes (EWMA), for the promotion wait. */
  private decodeStepEwma = 0;
  /** Built once per step when needed: when device blocks free up (see promotionWait). */
  private freeTimeline: { at: Float64Array; cum: Float64Array } | null = null;

  constructor(core: SchedCore, opts: LayerKvOptions = {}) {
    this.core = core;
    this.cost = core.cost;
    const L = core.numLayers;
    const min = opts.minDeviceLayers ?? 0;
    if (!(Number.isInteger(min) && min >= 0 && min <= L)) throw new RangeError(`LayerKV: minDeviceLayers must be an integer in [0, ${L}] (the model's layers), got ${min}`);
    const sets = opts.stagingSets ?? 2;
    if (!(Number.isInteger(sets) && sets >= 1 && sets <= 64)) throw new RangeError(`LayerKV: stagingSets must be an integer in [1, 64], got ${sets}`);
    this.minDeviceLayers = min;
    this.stagingSets = sets;
  }

  // ---- admission ----------------------------------------------------------------------

  /** Prefill compute seconds of `tokens` tokens in chunks of `chunk`. */
  prefillTime(tokens: number, chunk: number): number {
    let t = 0;
    for (let k = 0; k < tokens; k += chunk) t += this.cost.prefillChunkTime(Math.min(chunk, tokens - k), k);
    return t;
  }

  /** d2h and h2d seconds one host layer's copies take over a prefill of `tokens` in chunks of
   *  `chunk` (block-granular: what the plans move). */
  hostLayerCopyTime(tokens: number, chunk: number): { d2h: number; h2d: number } {
    const bs = this.core.blockSize;
    const B = this.core.blockBytes;
    let d2h = 0;
    let h2d = 0;
    for (let n = 0; n < tokens; n += chunk) {
      const end = Math.min(tokens, n + chunk);
      d2h += this.cost.transferTime((Math.ceil(end / bs) - Math.floor(n / bs)) * B, 'd2h');
      if (n > 0) h2d += this.cost.transferTime(Math.ceil(n / bs) * B, 'h2d');
    }
    return { d2h, h2d };
  }

  /** The smallest number of kept layers whose host layers' copies hide behind the prefill. */
  minKeep(tokens: number, chunk: number): number {
    const hit = this.minKeepCache.get(tokens);
    if (hit !== undefined) return hit;
    const L = this.core.numLayers;
    const compute = this.prefillTime(tokens, chunk);
    const one = this.hostLayerCopyTime(tokens, chunk);
    const perLayer = Math.max(one.d2h, one.h2d);
    const offloadable = perLayer > 0 ? Math.min(L, Math.floor(compute / perLayer)) : L;
    const k = Math.max(this.minDeviceLayers, L - offloadable);
    if (this.minKeepCache.size > 4096) this.minKeepCache.clear();
    this.minKeepCache.set(tokens, k);
    return k;
  }

  layout(q: LayoutQuery): Layout | null {
    const L = q.numLayers;
    const fit = q.blocksPerLayer === 0 ? L : Math.floor(q.deviceFree / q.blocksPerLayer);
    if (fit >= L) return { tiers: new Array<TierName>(L).fill('device'), stagingSets: 0 };
    // Host layers compute on staging sets: from the staging reserve, the rest from what the
    // kept layers could have had.
    const beyond = Math.max(0, this.stagingSets * q.blocksPerLayer - q.stagingFree);
    const keep = Math.floor((q.deviceFree - beyond) / q.blocksPerLayer);
    if (keep < 0 || keep < Math.min(L, this.minKeep(q.tokens, q.chunkTokens))) return null;
    if ((L - keep) * q.blocksPerLayer > q.hostFree) return null;
    return { tiers: interleavedKeep(L, keep).map((k) => (k ? 'device' : 'host')), stagingSets: this.stagingSets };
  }

  checkLayout(s: SeqState, tiers: readonly TierName[]): string | null {
    const L = this.core.numLayers;
    const keep = tiers.filter((t) => t === 'device').length;
    if (keep === L) return null;
    if (keep < this.minDeviceLayers) return `${s.id} keeps ${keep} layers, below minDeviceLayers ${this.minDeviceLayers}`;
    const chunk = this.core.maxBatchedTokens;
    const compute = this.prefillTime(s.target, chunk);
    const one = this.hostLayerCopyTime(s.target, chunk);
    const copies = (L - keep) * Math.max(one.d2h, one.h2d);
    return copies > compute * (1 + 1e-9) ? `${s.id} copies ${copies}s of KV behind ${compute}s of prefill` : null;
  }

  /**
   * A prefill admitted with host layers emits its first token at the end of its prefill but
   * decodes only once those layers are back on the device (streaming them every step rarely
   * hides at long contexts). Its TPOT is (wait for promotion + (n - 1) steps) / (n - 1), so it
   * keeps its TPOT SLO when the wait is at most (SLO - step) x (n - 1). The wait is the
   * promotion's PCIe time plus the time until enough device blocks have freed for every
   * earlier promotion and its own, assuming the fully device-resident decoding requests finish
   * after their remaining tokens at the measured step time (max tokens: an upper bound, so
   * the estimate errs towards waiting), minus its own prefill time.
   */
  admitsWithHostLayers(s: SeqState, blocksPerLayer: number, hostCount: number, deviceAvail: number): boolean {
    const slo = s.req.tpotSlo;
    const n = s.req.maxNewTokens - s.generated;
    if (slo === undefined || n <= 1) return true;
    const step = this.stepEstimate(s);
    if (step >= slo) return false;
    const L = this.core.numLayers;
    const kept = blocksPerLayer * (L - hostCount) + Math.max(0, blocksPerLayer * this.stagingSets - this.core.kv.stagingFree);
    const avail = deviceAvail - kept;
    const need = this.core.kv.blocksFor(s.target + 1) * hostCount;
    const load = hostCount * this.cost.transferTime(blocksPerLayer * this.core.blockBytes, 'h2d');
    const wait = this.promotionWait(need - avail, step) + load;
    return wait - this.prefillTime(s.target, this.core.maxBatchedTokens) <= (slo - step) * (n - 1);
  }

  /** A decode's step time: the measured recent steps, or before any, the cost model's. */
  private stepEstimate(s: SeqState): number {
    if (this.decodeStepEwma > 0) return this.decodeStepEwma;
    return this.cost.stepTime([{ phase: 'decode', tokens: 1, cachedBefore: s.target }]);
  }

  observeStep(decoded: boolean, seconds: number): void {
    if (!decoded) return;
    this.decodeStepEwma = this.decodeStepEwma === 0 ? seconds : 0.9 * this.decodeStepEwma + 0.1 * seconds;
  }

  /** Seconds until `deficit` more device blocks are free, from the fully device-resident
   *  decoding requests finishing; Infinity when they never free that many. */
  private promotionWait(deficit: number, step: number): number {
    if (deficit <= 0) return 0;
    if (!this.freeTimeline) {
      const ev: { at: number; blocks: number }[] = [];
      for (const r of this.core.running) {
        if (r.hostLayers.length > 0 || r.status !== 'decoding' || !r.hold) continue;
        ev.push({ at: (r.req.maxNewTokens - r.generated) * step, blocks: this.core.numLayers * r.hold.kv.tables[0].length });
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
    let lo = 0;
    let hi = cum.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] >= deficit) hi = mid;
      else lo = mid + 1;
    }
    return lo < cum.length ? at[lo] : Infinity;
  }

  reserved(running: readonly SeqState[]): number {
    const kv = this.core.kv;
    const L = this.core.numLayers;
    let demand = 0;
    for (const s of running) {
      const t = s.hold?.kv;
      if (!t) continue;
      if (s.hostLayers.length > 0) demand += kv.blocksFor(s.target + 1) * s.hostLayers.length;
      // Growth up to max tokens: LayerKV can fill the device to the watermark with new
      // prefills' kept layers, and then every decode that crosses a block boundary would
      // preempt the newest request.
      const grow = kv.blocksFor(s.req.promptLen + s.req.maxNewTokens) - t.tables[0].length;
      if (grow > 0) demand += grow * (L - s.hostLayers.length);
    }
    return demand;
  }

  // ---- steps --------------------------------------------------------------------------

  beginStep(_b: StepBuilder): void {
    this.h2dPlanned = 0;
    this.freeTimeline = null;
  }

  addPrefill(s: SeqState, tokens: number, b: StepBuilder): void {
    const item = this.core.prefillItem(s, tokens);
    if (s.hostLayers.length > 0) item.staging = this.stageHostLayers(s, b, s.computed, tokens, item.emitsToken, 'prefill');
    b.add(item);
  }

  /**
   * Plans the reloads and offloads of `s`'s host layers for positions [n, n + tokens) and
   * returns each layer's staging blocks. `last` marks the final chunk: the staging sets go
   * back when the offloads reading them complete.
   */
  private stageHostLayers(s: SeqState, b: StepBuilder, n: number, tokens: number, last: boolean, why: 'prefill' | 'decode'): StagedLayer[] {
    const core = this.core;
    const kv = s.hold!.kv;
    const bs = core.blockSize;
    const B = core.blockBytes;
    const end = n + tokens;
    const ws = core.kv.blocksFor(end);
    // A decode writes one position: only its block goes back to the host.
    const first = why === 'decode' ? ws - 1 : Math.floor(n / bs);
    const nReload = core.kv.blocksFor(n);
    const sets = kv.staging;
    if (sets.length === 0 || sets.some((x) => x.length < ws)) throw new Error(`LayerKV: ${s.id} has no staging for ${ws} blocks`);
    const uses = this.lastUse.get(s) ?? [];
    const staged: StagedLayer[] = [];
    for (let i = 0; i < s.hostLayers.length; i++) {
      const l = s.hostLayers[i];
      const r = i % sets.length;
      const set = sets[r];
      const home = kv.tables[l];
      let gate = uses[r];
      if (gate && !core.transfers.has(gate.t.id)) gate = undefined;
      if (nReload > 0) {
        core.transfers.issue(b, s, {
          kind: 'reload',
          channel: 'h2d',
          bytes: nReload * B,
          moves: [pairsOf(l, 'host', 'device', home, set, 0, nReload)],
          beforeLayer: l,
          after: this.waitList(gate, this.pendingOffload(s, l)),
        });
        if (why === 'prefill') core.stats.reloads++;
        else core.stats.streamedLoads++;
        core.stats.loadedBytes += nReload * B;
      } else if (gate) {
        // No reload to order behind the set's previous user: this layer's compute waits for
        // that offload itself. It is in this plan (a first chunk has no earlier users).
        if (gate.t.beforeLayer !== undefined || gate.t.afterLayer === undefined || gate.t.afterLayer >= l) {
          throw new Error(`LayerKV: staging set ${r} of ${s.id} is reused across steps without a reload`);
        }
        gate.t.beforeLayer = l;
      }
      const off = core.transfers.issue(b, s, {
        kind: 'offload',
        channel: 'd2h',
        bytes: (ws - first) * B,
        moves: [pairsOf(l, 'device', 'host', set, home, first, ws)],
        afterLayer: l,
      });
      core.stats.offloads++;
      core.stats.offloadedBytes += (ws - first) * B;
      uses[r] = off;
      let offs = this.lastOffload.get(s);
      if (!offs) this.lastOffload.set(s, (offs = []));
      offs[l] = off;
      staged.push({ layer: l, blocks: set.slice(0, ws) });
    }
    this.lastUse.set(s, uses);
    if (last) this.releaseStaging(s);
    return staged;
  }

  /** `s` is done with its staging sets: each goes back when the last transfer reading it
   *  completes (now, when none is in flight). */
  private releaseStaging(s: SeqState): void {
    const kv = s.hold!.kv;
    const uses = this.lastUse.get(s) ?? [];
    this.lastUse.delete(s);
    const sets = kv.staging;
    kv.staging = [];
    sets.forEach((set, r) => {
      const rec = uses[r];
      if (rec && this.core.transfers.has(rec.t.id)) rec.release.push({ layer: -1, tier: 'device', blocks: set });
      else this.core.kv.release(s.id, -1, 'device', set);
    });
  }

  /** The offload into layer l's host table still in flight, if any. */
  private pendingOffload(s: SeqState, l: number): TransferRec | undefined {
    const rec = this.lastOffload.get(s)?.[l];
    return rec && this.core.transfers.has(rec.t.id) ? rec : undefined;
  }

  private waitList(...recs: (TransferRec | undefined)[]): number[] | undefined {
    const ids: number[] = [];
    for (const r of recs) if (r && !ids.includes(r.t.id)) ids.push(r.t.id);
    return ids.length > 0 ? ids : undefined;
  }

  forget(s: SeqState): void {
    // The hold gives its staging back with its tables once its transfers are done.
    this.lastUse.delete(s);
    this.lastOffload.delete(s);
  }

  decodeHostLayers(s: SeqState, b: StepBuilder): HostDecode {
    const core = this.core;
    const kv = s.hold!.kv;
    const blocks = core.kv.blocksFor(s.computed + 1);
    if (!core.kv.canAllocateDevice(blocks * s.hostLayers.length, true)) return 'stream';
    // Whether the loads hide behind this step's compute (layer l waits for its own load, and
    // the host layers are spread out, so roughly: all of them within the whole step). If they
    // do, the request decodes in this step; if not, gating the step on them would stall every
    // other decode for the PCIe time, so the loads run on their own and the request decodes
    // once they land (it has transfers in flight until then).
    const perLayer = this.cost.transferTime(kv.tables[s.hostLayers[0]].length * core.blockBytes, 'h2d');
    const t = perLayer * s.hostLayers.length;
    const hidden = this.h2dPlanned + t <= b.timeWith(core.decodeItem(s));
    this.h2dPlanned += t;
    for (const l of s.hostLayers) {
      const mv = core.kv.moveLayer(kv, l, 'device')!;
      core.stats.promotions++;
      core.stats.loadedBytes += mv.source.length * core.blockBytes;
      core.transfers.issue(
        b,
        s,
        {
          kind: 'promote',
          channel: 'h2d',
          bytes: mv.source.length * core.blockBytes,
          moves: [{ layer: l, from: 'host', to: 'device', pairs: mv.pairs }],
          ...(hidden ? { beforeLayer: l } : {}),
          after: this.waitList(this.pendingOffload(s, l)),
        },
        { release: [{ layer: l, tier: mv.from, blocks: mv.source }] },
      );
    }
    s.hostLayers = [];
    this.lastOffload.delete(s);
    if (kv.staging.length > 0) this.releaseStaging(s);
    return hidden ? 'now' : 'later';
  }

  streamDecodes(candidates: readonly SeqState[], b: StepBuilder, grow: (s: SeqState) => boolean): void {
    const core = this.core;
    let loadTime = this.h2dPlanned;
    for (const s of candidates) {
      if (b.budget === 0) break;
      // An earlier decode's growth may have preempted it.
      if (s.status !== 'decoding' || !s.hold) continue;
      const kv = s.hold.kv;
      const n = s.computed;
      const t = s.hostLayers.length * this.cost.transferTime(core.kv.blocksFor(n) * core.blockBytes, 'h2d');
      const item = core.decodeItem(s);
      const hidden = loadTime + t <= b.timeWith(item);
      if (!hidden && b.plan.compute.length > 0) continue;
      const sets = Math.min(this.stagingSets, s.hostLayers.length);
      const ws = core.kv.blocksFor(n + 1);
      if (core.kv.stagingNeeded(kv, sets, ws) > core.kv.stagingFree + core.kv.deviceAdmissible) continue;
      if (!grow(s)) continue;
      if (!core.kv.allocStaging(kv, sets, ws)) continue;
      loadTime += t;
      this.h2dPlanned = loadTime;
      item.staging = this.stageHostLayers(s, b, n, 1, false, 'decode');
      b.add(item);
    }
  }
}

/** Pairs (src[i], dst[i]) for i in [from, to). */
function pairsOf(layer: number, fromTier: TierName, toTier: TierName, src: readonly number[], dst: readonly number[], from: number, to: number): BlockMove {
  const pairs = new Int32Array(2 * (to - from));
  for (let i = from; i < to; i++) {
    pairs[2 * (i - from)] = src[i];
    pairs[2 * (i - from) + 1] = dst[i];
  }
  return { layer, from: fromTier, to: toTier, pairs };
}

