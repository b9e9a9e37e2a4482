// The real executor: runs each StepPlan on a backend and a model, exactly as the contract
// (lib/contract/plan.ts) orders it.
//
// Per step:
//   - table updates are applied to this executor's own copy of every (sequence, layer) table;
//   - the compute items become ONE forward call of the native runner: tokens, positions, the
//     per-layer block tables (a layer on the host uses the item's staging blocks) and the
//     slot mapping, uploaded once for all layers;
//   - transfers are block copies between the device and host pools that the runner issues
//     at their stage (at the step's start, or once layer afterLayer's K/V are in the pool),
//     after the transfers in `after`, on the queue of their tiers; a transfer that gates a
//     layer (beforeLayer) is a native wait of that layer;
//   - the step's one Promise settles when the forward is done; sampled tokens come back in the
//     result, and transfers that completed since the last result are reported with their
//     wall-clock completion time.
//
// Prefix-store transfers. A 'prefix-read' is the store's verified load into its host landing
// blocks, on the store's threads; a transfer after one (the 'prefix-load' into device blocks)
// starts only once the read has resolved ok, so nothing copies bytes that did not verify,
// and fails when the read failed. A 'prefix-save' is its block copies (issued like any
// other), then the store's write of the landed chunk; it completes when the write is done
// and the landing blocks are no longer read.
import type { KVPool } from '../backend.js';
import type { Work } from '../backend.js';
import type { ForwardStep, LayerCopy } from '../backend/model.js';
import type { ComputeItem, Executor, SampledToken, SeqId, StepPlan, StepResult, TierName, Transfer, TransferDone } from '../contract/plan.js';
import type { Model } from '../model/model.js';
import { packSampling, type ResolvedSampling } from '../model/sampling.js';
import type { PrefixStore } from '../store/store.js';

/** What the executor needs to know of a request beyond the plan. */
export interface SeqInfo {
  promptLen: number;
  sampling: ResolvedSampling;
}

/** Bytes the policy moved for one request. */
export interface SeqTraffic {
  offloadedBytes: number;
  loadedBytes: number;
}

/** Prefix-store traffic since the start. */
export interface StoreTraffic {
  loads: number;
  loadFailures: number;
  saves: number;
  saveFailures: number;
}

interface Flight {
  t: Transfer;
  /** Native copies (empty for a store read). */
  works: Work[];
  /** Settles with the failure, or undefined when the transfer succeeded. */
  done: Promise<string | undefined>;
  /** Completes in JavaScript (a store read or write, or after one): no native Work to wait on. */
  js: boolean;
  settled: boolean;
}

const OFFLOAD_KINDS = new Set(['offload', 'swap-out']);
/** Kinds that move no request bytes between the tiers (the store's own traffic). */
const STORE_KINDS = new Set(['prefix-read', 'prefix-save']);

export class EngineExecutor implements Executor {
  private readonly tables = new Map<SeqId, { tiers: TierName[]; tables: number[][] }>();
  private readonly flights = new Map<number, Flight>();
  private done: TransferDone[] = [];
  private wakeDone: (() => void) | null = null;
  private readonly traffic = new Map<SeqId, SeqTraffic>();
  private readonly L: number;
  private readonly blockSize: number;
  private readonly blockBytes: number;
  /** Host seconds spent issuing the last step (building its arrays and the native calls). */
  lastIssueSeconds = 0;
  readonly storeTraffic: StoreTraffic = { loads: 0, loadFailures: 0, saves: 0, saveFailures: 0 };

  constructor(
    private readonly model: Model,
    private readonly pools: Record<TierName, KVPool>,
    private readonly seqInfo: (seq: SeqId) => SeqInfo | undefined,
    private readonly clock: () => number,
    private readonly store: PrefixStore | null = null,
  ) {
    this.L = model.config.numLayers;
    this.blockSize = pools.device.layout.blockSize;
    this.blockBytes = pools.device.blockBytes;
  }

  get now(): number {
    return this.clock();
  }

  get pendingTransfers(): number {
    let n = 0;
    for (const f of this.flights.values()) if (!f.settled) n++;
    return n;
  }

  /** Bytes moved for `seq` so far (offloads and swap-outs; reloads, promotions, swap-ins,
   *  prefix loads). */
  trafficOf(seq: SeqId): SeqTraffic {
    return this.traffic.get(seq) ?? { offloadedBytes: 0, loadedBytes: 0 };
  }

  async execute(plan: StepPlan): Promise<StepResult> {
    const start = this.clock();
    this.applyTables(plan);
    for (const s of plan.ended) this.traffic.delete(s);
    const sampled: SampledToken[] = [];
    // Store reads, and what waits for one, complete in JavaScript.
    const deferred: Transfer[] = [];
    const later = new Set<number>();
    for (const t of plan.transfers) {
      if (t.kind === 'prefix-read' || (t.after ?? []).some((d) => later.has(d) || this.flights.get(d)?.js)) {
        deferred.push(t);
        later.add(t.id);
      }
    }
    if (plan.compute.length > 0) {
      const step = this.buildStep(plan.compute);
      // Every other transfer goes to the runner, which issues it at its stage and gates
      // layers on it.
      const copies: LayerCopy[] = [];
      const index = new Map<number, number[]>();
      for (const t of plan.transfers) {
        if (later.has(t.id)) continue;
        const after: number[] = [];
        const waitFor: Work[] = [];
        for (const d of t.after ?? []) {
          const inPlan = index.get(d);
          if (inPlan) after.push(...inPlan);
          else waitFor.push(...this.pendingWorks(d));
        }
        const mine: number[] = [];
        for (const [from, to, pairs] of this.copiesOf(t)) {
          mine.push(copies.length);
          copies.push({ src: this.pools[from], dst: this.pools[to], pairs, afterLayer: t.afterLayer, beforeLayer: t.beforeLayer, after, waitFor });
        }
        index.set(t.id, mine);
      }
      step.copies = copies;
      const fw = this.model.forward(step);
      for (const t of plan.transfers) if (!later.has(t.id)) this.track(t, index.get(t.id)!.map((i) => fw.copies[i]));
      for (const t of deferred) this.startAfterStore(t);
      this.lastIssueSeconds = this.clock() - start;
      const r = await fw.work;
      let k = 0;
      for (const c of plan.compute) if (c.emitsToken) sampled.push({ seq: c.seq, token: r.tokenIds[k++] });
    } else {
      // No layers run: every transfer is ready at once, in issue order.
      for (const t of plan.transfers) if (later.has(t.id)) this.startAfterStore(t);
      else this.issue(t);
      this.lastIssueSeconds = this.clock() - start;
    }
    return { start, end: this.clock(), transfersDone: this.drain(), sampled };
  }

  async idle(until: number, wake?: Promise<unknown>): Promise<StepResult> {
    const start = this.clock();
    if (until <= start) {
      // A poll: report what is done, wait for nothing.
    } else if (this.done.length === 0 && this.pendingTransfers > 0) {
      const waits: Promise<unknown>[] = [new Promise<void>((res) => (this.wakeDone = res))];
      if (wake) waits.push(wake);
      let timer: NodeJS.Timeout | undefined;
      const left = until - start;
      if (Number.isFinite(left)) waits.push(new Promise<void>((res) => (timer = setTimeout(res, Math.max(0, left) * 1000))));
      await Promise.race(waits);
      if (timer) clearTimeout(timer);
      this.wakeDone = null;
    } else if (this.done.length === 0 && wake) {
      await wake;
    }
    return { start, end: this.clock(), transfersDone: this.drain(), sampled: [] };
  }

  private drain(): TransferDone[] {
    const out = this.done;
    this.done = [];
    for (const d of out) this.flights.delete(d.id);
    return out;
  }

  // ---- tables -------------------------------------------------------------------------

  private applyTables(plan: StepPlan): void {
    for (const u of plan.tables) {
      if (u.kind === 'drop') {
        this.tables.delete(u.seq);
        continue;
      }
      let t = this.tables.get(u.seq);
      if (!t) {
        t = { tiers: new Array<TierName>(this.L).fill('device'), tables: Array.from({ length: this.L }, () => []) };
        this.tables.set(u.seq, t);
      }
      if (u.kind === 'append') {
        t.tiers[u.layer] = u.tier;
        t.tables[u.layer].push(...u.blocks);
      } else {
        t.tiers[u.layer] = u.tier;
        t.tables[u.layer] = [...u.blocks];
      }
    }
  }

  /** The device blocks item `c` computes layer l on: its staging blocks, or its table. */
  private layerBlocks(c: ComputeItem, l: number): readonly number[] {
    if (c.staging) for (const s of c.staging) if (s.layer === l) return s.blocks;
    const t = this.tables.get(c.seq);
    if (!t) throw new Error(`EngineExecutor: ${c.seq} computes with no block tables`);
    if (t.tiers[l] !== 'device') throw new Error(`EngineExecutor: ${c.seq} layer ${l} is on the ${t.tiers[l]} tier and has no staging blocks`);
    return t.tables[l];
  }

  // ---- the forward step ---------------------------------------------------------------

  private buildStep(items: readonly ComputeItem[]): ForwardStep {
    const L = this.L;
    const bs = this.blockSize;
    const B = items.length;
    let T = 0;
    let stride = 1;
    let R = 0;
    for (const c of items) {
      T += c.tokens;
      stride = Math.max(stride, Math.ceil((c.cachedBefore + c.tokens) / bs));
      if (c.emitsToken) R++;
    }
    const tokens = new Int32Array(T);
    const positions = new Int32Array(T);
    const qStartLoc = new Int32Array(B + 1);
    const contextLens = new Int32Array(B);
    const blockTables = new Int32Array(L * B * stride);
    const slotMapping = new Int32Array(L * T);
    const logitsRows = new Int32Array(R);
    const rows: ResolvedSampling[] = [];
    const counters: number[] = [];
    let at = 0;
    let r = 0;
    items.forEach((c, b) => {
      if (!c.tokenIds || c.tokenIds.length !== c.tokens) throw new Error(`EngineExecutor: ${c.seq}'s compute item carries ${c.tokenIds?.length ?? 'no'} token ids for ${c.tokens} positions`);
      tokens.set(c.tokenIds, at);
      const ctx = c.cachedBefore + c.tokens;
      for (let i = 0; i < c.tokens; i++) positions[at + i] = c.cachedBefore + i;
      qStartLoc[b] = at;
      contextLens[b] = ctx;
      const need = Math.ceil(ctx / bs);
      for (let l = 0; l < L; l++) {
        const blocks = this.layerBlocks(c, l);
        if (blocks.length < need) throw new Error(`EngineExecutor: ${c.seq} layer ${l} has ${blocks.length} blocks for ${ctx} positions`);
        const row = (l * B + b) * stride;
        for (let j = 0; j < need; j++) blockTables[row + j] = blocks[j];
        const slots = l * T + at;
        for (let i = 0; i < c.tokens; i++) {
          const p = c.cachedBefore + i;
          slotMapping[slots + i] = blocks[(p / bs) | 0] * bs + (p % bs);
        }
      }
      at += c.tokens;
      if (c.emitsToken) {
        const info = this.seqInfo(c.seq);
        if (!info) throw new Error(`EngineExecutor: no request information for ${c.seq}`);
        logitsRows[r++] = at - 1;
        rows.push(info.sampling);
        counters.push(ctx - info.promptLen);
      }
    });
    qStartLoc[B] = T;
    return { pool: this.pools.device, tokens, positions, qStartLoc, contextLens, tableStride: stride, blockTables, slotMapping, logitsRows, sampling: packSampling(rows, counters) };
  }

  // ---- transfers ----------------------------------------------------------------------

  /** The copies of a transfer, one per direction: the moves (one per layer) share pools. */
  private copiesOf(t: Transfer): [TierName, TierName, Int32Array][] {
    const byDir = new Map<string, Int32Array[]>();
    for (const m of t.moves) {
      const key = `${m.from}>${m.to}`;
      (byDir.get(key) ?? byDir.set(key, []).get(key)!).push(m.pairs);
    }
    return [...byDir].map(([key, parts]) => {
      const [from, to] = key.split('>') as [TierName, TierName];
      return [from, to, parts.length === 1 ? parts[0] : concat(parts)];
    });
  }

  private pendingWorks(id: number): Work[] {
    const f = this.flights.get(id);
    return f && !f.settled ? f.works : [];
  }

  /** A store read, or a transfer after one: runs once what it waits for has succeeded. */
  private startAfterStore(t: Transfer): void {
    if (t.beforeLayer !== undefined) throw new Error(`EngineExecutor: transfer ${t.id} (${t.kind} of ${t.seq}) gates layer ${t.beforeLayer} but waits for a prefix-store read, which no layer can wait on`);
    const deps: Flight[] = [];
    for (const d of t.after ?? []) {
      const f = this.flights.get(d);
      if (f && !f.settled) deps.push(f);
    }
    const done = (async (): Promise<string | undefined> => {
      for (const f of deps) {
        const err = await f.done;
        if (err !== undefined) return `waits for transfer ${f.t.id} (${f.t.kind}), which failed: ${err}`;
      }
      if (t.kind === 'prefix-read') return this.read(t);
      const works = this.copiesOf(t).map(([from, to, pairs]) => this.pools[from].backend.copyBlocks(this.pools[from], this.pools[to], pairs));
      return this.afterCopies(t, works);
    })();
    this.track(t, [], done);
  }

  /** The chunk's landing blocks in the store's order: layer l's j-th block at l * perLayer + j. */
  private chunkBlocks(t: Transfer): Int32Array {
    const dest = t.chunk!.dest;
    const per = dest[0]?.blocks.length ?? 0;
    const out = new Int32Array(dest.length * per);
    for (const d of dest) {
      if (d.tier !== 'host' || d.blocks.length !== per) throw new Error(`EngineExecutor: transfer ${t.id} lands chunk ${t.chunk!.index} layer ${d.layer} in ${d.blocks.length} ${d.tier} blocks; the store moves whole chunks through host blocks`);
      out.set(d.blocks, d.layer * per);
    }
    return out;
  }

  private async read(t: Transfer): Promise<string | undefined> {
    this.storeTraffic.loads++;
    const store = this.store;
    if (!store) {
      this.storeTraffic.loadFailures++;
      return 'this engine has no prefix store';
    }
    try {
      const r = await store.load(t.chunk!.hash, { pool: this.pools.host, blocks: this.chunkBlocks(t) });
      // The engine hears of each miss here; the store's own list of them is not needed.
      if (!r.ok) store.takeFailedLoads();
      if (r.ok) return undefined;
      this.storeTraffic.loadFailures++;
      return `${r.fault}: ${r.message}`;
    } catch (err) {
      this.storeTraffic.loadFailures++;
      return (err as Error)?.message ?? String(err);
    }
  }

  /** Settles with a transfer's copies; a save then writes the landed chunk to the store. */
  private async afterCopies(t: Transfer, works: Work[]): Promise<string | undefined> {
    try {
      await Promise.all(works);
    } catch (err) {
      return (err as Error)?.message ?? String(err);
    }
    if (t.kind !== 'prefix-save') return undefined;
    this.storeTraffic.saves++;
    if (!this.store) return undefined;
    try {
      const r = await this.store.save(t.chunk!.hash, { pool: this.pools.host, blocks: this.chunkBlocks(t) });
      if (Object.values(r.tiers).includes('failed')) this.storeTraffic.saveFailures++;
      return undefined;
    } catch (err) {
      this.storeTraffic.saveFailures++;
      return (err as Error)?.message ?? String(err);
    }
  }

  /** Issues a transfer's copies directly (a plan without compute: nothing to order against). */
  private issue(t: Transfer): void {
    const waitFor: Work[] = [];
    for (const d of t.after ?? []) waitFor.push(...this.pendingWorks(d));
    this.track(t, this.copiesOf(t).map(([from, to, pairs]) => this.pools[from].backend.copyBlocks(this.pools[from], this.pools[to], pairs, { waitFor })));
  }

  private track(t: Transfer, works: Work[], js?: Promise<string | undefined>): void {
    const done = js ?? this.afterCopies(t, works);
    const f: Flight = { t, works, done, js: js !== undefined || t.kind === 'prefix-save', settled: false };
    this.flights.set(t.id, f);
    if (!STORE_KINDS.has(t.kind)) {
      const tr = this.traffic.get(t.seq) ?? { offloadedBytes: 0, loadedBytes: 0 };
      if (OFFLOAD_KINDS.has(t.kind)) tr.offloadedBytes += t.bytes;
      else tr.loadedBytes += t.bytes;
      this.traffic.set(t.seq, tr);
    }
    done.then((err) => this.settle(f, err));
  }

  private settle(f: Flight, error: string | undefined): void {
    f.settled = true;
    const d: TransferDone = { id: f.t.id, at: this.clock() };
    if (error !== undefined) d.error = error;
    this.done.push(d);
    this.wakeDone?.();
  }

  /** Bytes one layer-block holds (for reports). */
  get layerBlockBytes(): number {
    return this.blockBytes;
  }
}

function concat(parts: Int32Array[]): Int32Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
