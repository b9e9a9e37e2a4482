// The ledger executor: runs plans on the simulator's clock while keeping its own shadow of
// both tiers, built only from what the plans say (table updates, staged, landing and freed
// blocks, transfers and compute items), and throws at the first plan a real executor could
// not obey:
//   - a layer computes while KV it reads is not on the device (missing, another layer's or
//     sequence's, or still being written by a copy that does not gate that layer);
//   - a copy reads a block that holds nothing, or writes a block its request does not own;
//   - a block is read or written after it was freed, or freed while a copy still uses it;
//   - a request ends and its blocks are not all given back once its copies are done;
//   - a prefix save copies a chunk whose KV is not complete in every layer.
// It can also fail prefix reads (failRead): a failed read, and every transfer after it, write
// nothing, so a plan that computes on a failed chunk's KV reads blocks holding nothing.
// It shares no code with the scheduler: block contents are tracked as (sequence, layer,
// positions [lo, hi)) per block, and each rule is checked from the contract's ordering
// (lib/contract/plan.ts), not from how the scheduler meant it.
import type { CostModel } from '../../lib/cost/cost-model.js';
import type { ComputeItem, Executor, FreedBlocks, StepPlan, StepResult, TierName, Transfer } from '../../lib/contract/plan.js';
import { SimExecutor, type SimExecutorOptions } from '../../lib/sim/executor.js';

interface Content {
  seq: string;
  layer: number;
  lo: number;
  hi: number;
}

interface Block {
  owner: string | null;
  kind: 'table' | 'staging' | 'landing' | null;
  content: Content | null;
  /** In-flight transfers reading / writing this block. */
  readers: Set<number>;
  writer: number | null;
}

interface Flight {
  t: Transfer;
  /** Content each destination block gets when the copy lands: [tier, block, content]. */
  result: [TierName, number, Content | null][];
  applied: boolean;
  /** A failed read, or a transfer after one: what it writes holds nothing. */
  failed: boolean;
}

export class LedgerError extends Error {}

export class LedgerExecutor implements Executor {
  readonly sim: SimExecutor;
  private readonly blocks: Record<TierName, Block[]>;
  private readonly tables = new Map<string, { tiers: TierName[]; tables: number[][] }>();
  private readonly flights = new Map<number, Flight>();
  private readonly ended = new Set<string>();
  /** Blocks owned and transfers in flight per request. */
  private readonly owned = new Map<string, number>();
  private readonly flying = new Map<string, number>();
  readonly numLayers: number;
  readonly blockSize: number;
  readonly blockBytes: number;
  /** Checks made, for tests that the ledger looked at something. */
  readonly counts = { computeLayers: 0, transfers: 0, frees: 0, allocs: 0, failedReads: 0, saves: 0 };
  private readonly failRead: (t: Transfer) => boolean;

  constructor(cost: CostModel, o: { deviceBlocks: number; hostBlocks: number; blockSize: number; sim?: SimExecutorOptions; failRead?: (t: Transfer) => boolean }) {
    this.sim = new SimExecutor(cost, o.sim);
    this.failRead = o.failRead ?? (() => false);
    this.numLayers = cost.numLayers;
    this.blockSize = o.blockSize;
    this.blockBytes = cost.kvBytesPerTokenLayer * o.blockSize;
    const mk = (n: number) => Array.from({ length: n }, (): Block => ({ owner: null, kind: null, content: null, readers: new Set(), writer: null }));
    this.blocks = { device: mk(o.deviceBlocks), host: mk(o.hostBlocks) };
  }

  get now(): number {
    return this.sim.now;
  }
  get pendingTransfers(): number {
    return this.sim.pendingTransfers;
  }

  async execute(plan: StepPlan): Promise<StepResult> {
    this.check(plan);
    const r = this.sim.executeSync(plan);
    this.landed(r);
    return r;
  }

  async idle(until: number): Promise<StepResult> {
    const r = this.sim.idleSync(until);
    this.landed(r);
    return r;
  }

  /** After the run: nothing owned, nothing in flight. */
  assertEmpty(): void {
    for (const tier of ['device', 'host'] as const) {
      this.blocks[tier].forEach((b, i) => {
        if (b.owner !== null) this.fail(`${tier} block ${i} is still owned by ${b.owner} (${b.kind}) at the end`);
      });
    }
    if (this.flights.size > 0) this.fail(`${this.flights.size} transfers still in flight at the end`);
  }

  private fail(msg: string): never {
    throw new LedgerError(`ledger: ${msg}`);
  }

  private block(tier: TierName, id: number, what: string): Block {
    const b = this.blocks[tier][id];
    if (!b) this.fail(`${what}: ${tier} block ${id} is out of range`);
    return b;
  }

  // ---- allocations and frees (net effect of one plan) ---------------------------------

  private applyOwnership(plan: StepPlan): void {
    type Op = { tier: TierName; block: number; seq: string; kind: 'table' | 'staging' | 'landing' };
    const allocs = new Map<string, Op[]>();
    const frees = new Map<string, FreedBlocks[]>();
    const key = (t: TierName, b: number) => `${t}:${b}`;
    const addAlloc = (op: Op) => {
      const k = key(op.tier, op.block);
      (allocs.get(k) ?? allocs.set(k, []).get(k)!).push(op);
    };
    for (const u of plan.tables) if (u.kind !== 'drop') for (const b of u.blocks) addAlloc({ tier: u.tier, block: b, seq: u.seq, kind: 'table' });
    for (const s of plan.staged) for (const b of s.blocks) addAlloc({ tier: s.tier, block: b, seq: s.seq, kind: 'staging' });
    for (const s of plan.landing) for (const b of s.blocks) addAlloc({ tier: s.tier, block: b, seq: s.seq, kind: 'landing' });
    for (const f of plan.freed) for (const b of f.blocks) {
      const k = key(f.tier, b);
      (frees.get(k) ?? frees.set(k, []).get(k)!).push(f);
    }
    const touched = new Set([...allocs.keys(), ...frees.keys()]);
    for (const k of touched) {
      const colon = k.indexOf(':');
      const tier = k.slice(0, colon) as TierName;
      const id = Number(k.slice(colon + 1));
      const b = this.block(tier, id, 'allocation');
      const A = allocs.get(k) ?? [];
      const F = frees.get(k) ?? [];
      if (b.owner !== null && A.length <= 1 && F.length === 1) {
        this.free(plan.step, tier, id, b, F[0]);
        if (A.length === 1) this.alloc(plan.step, tier, id, b, A[0].seq, A[0].kind);
      } else if (b.owner === null && A.length === 1 && F.length <= 1) {
        this.alloc(plan.step, tier, id, b, A[0].seq, A[0].kind);
        if (F.length === 1) this.free(plan.step, tier, id, b, F[0]);
      } else if (b.owner !== null && F.length === 0 && A.length === 1) {
        this.fail(`step ${plan.step}: ${tier} block ${id} handed to ${A[0].seq} (${A[0].kind}) while ${b.owner} owns it (${b.kind})`);
      } else {
        this.fail(`step ${plan.step}: ${tier} block ${id} (owned by ${b.owner ?? 'nobody'}) is allocated ${A.length} and freed ${F.length} times in one plan`);
      }
    }
  }

  private free(step: number, tier: TierName, id: number, b: Block, f: FreedBlocks): void {
    if (b.owner !== f.seq) this.fail(`step ${step}: ${tier} block ${id} freed for ${f.seq} but owned by ${b.owner ?? 'nobody'}`);
    if (b.readers.size > 0 || b.writer !== null) this.fail(`step ${step}: ${tier} block ${id} of ${f.seq} freed while transfer ${b.writer ?? [...b.readers][0]} still uses it`);
    this.owned.set(f.seq, (this.owned.get(f.seq) ?? 0) - 1);
    b.owner = null;
    b.kind = null;
    b.content = null;
    this.counts.frees++;
  }

  private alloc(step: number, tier: TierName, id: number, b: Block, seq: string, kind: 'table' | 'staging' | 'landing'): void {
    if (b.owner !== null) this.fail(`step ${step}: ${tier} block ${id} handed to ${seq} while ${b.owner} owns it`);
    b.owner = seq;
    b.kind = kind;
    b.content = null;
    this.owned.set(seq, (this.owned.get(seq) ?? 0) + 1);
    this.counts.allocs++;
  }

  private applyTables(plan: StepPlan): void {
    for (const u of plan.tables) {
      if (u.kind === 'drop') {
        if (!this.tables.delete(u.seq)) this.fail(`step ${plan.step}: drop of ${u.seq}, which has no tables`);
        continue;
      }
      let t = this.tables.get(u.seq);
      if (!t) this.tables.set(u.seq, (t = { tiers: new Array(this.numLayers).fill('device'), tables: Array.from({ length: this.numLayers }, () => []) }));
      if (u.kind === 'append') {
        if (t.tables[u.layer].length > 0 && t.tiers[u.layer] !== u.tier) this.fail(`step ${plan.step}: ${u.seq} layer ${u.layer} grows in ${u.tier}, its table is on ${t.tiers[u.layer]}`);
        t.tiers[u.layer] = u.tier;
        t.tables[u.layer].push(...u.blocks);
      } else {
        if (u.blocks.length !== t.tables[u.layer].length) this.fail(`step ${plan.step}: ${u.seq} layer ${u.layer} moves ${t.tables[u.layer].length} blocks into ${u.blocks.length}`);
        t.tiers[u.layer] = u.tier;
        t.tables[u.layer] = [...u.blocks];
      }
      for (const b of u.blocks) {
        const blk = this.block(u.tier, b, 'table');
        if (blk.owner !== u.seq) this.fail(`step ${plan.step}: ${u.seq} layer ${u.layer} table takes ${u.tier} block ${b}, owned by ${blk.owner ?? 'nobody'}`);
      }
    }
  }

  // ---- one step -----------------------------------------------------------------------

  private check(plan: StepPlan): void {
    for (const s of plan.ended) this.ended.add(s);
    this.applyOwnership(plan);
    this.applyTables(plan);
    const ts = plan.transfers;
    // Stages, as the contract defines them.
    const stageOf = new Map<number, number>();
    for (const t of ts) {
      let st = t.afterLayer ?? -1;
      for (const d of t.after ?? []) {
        if (stageOf.has(d)) st = Math.max(st, stageOf.get(d)!);
        else if (!this.flights.has(d)) this.fail(`step ${plan.step}: transfer ${t.id} waits for ${d}, which is neither in flight nor earlier in the plan`);
      }
      if (t.beforeLayer !== undefined && t.beforeLayer <= st) this.fail(`step ${plan.step}: transfer ${t.id} gates layer ${t.beforeLayer} but starts after layer ${st}`);
      stageOf.set(t.id, st);
    }
    const gated = new Map<number, Transfer[]>();
    for (const t of ts) if (t.beforeLayer !== undefined) (gated.get(t.beforeLayer) ?? gated.set(t.beforeLayer, []).get(t.beforeLayer)!).push(t);
    const issueStage = (st: number) => {
      for (const t of ts) if (stageOf.get(t.id) === st) this.issue(plan, t);
    };
    issueStage(-1);
    for (let l = 0; l < this.numLayers; l++) {
      for (const t of gated.get(l) ?? []) this.apply(t.id, `before layer ${l}`);
      for (const c of plan.compute) this.computeLayer(plan, c, l);
      issueStage(l);
    }
    // Ended requests with nothing in flight own nothing.
    for (const s of [...this.ended]) {
      if ((this.flying.get(s) ?? 0) > 0) continue;
      if ((this.owned.get(s) ?? 0) > 0) {
        for (const tier of ['device', 'host'] as const) {
          this.blocks[tier].forEach((b, i) => {
            if (b.owner === s) this.fail(`step ${plan.step}: ${s} ended but still owns ${tier} block ${i} (${b.kind})`);
          });
        }
      }
      this.ended.delete(s);
      this.owned.delete(s);
    }
  }

  private computeLayer(plan: StepPlan, c: ComputeItem, l: number): void {
    const what = () => `step ${plan.step}: ${c.seq} layer ${l}`;
    if (this.ended.has(c.seq)) this.fail(`${what()}: computes after the request ended`);
    let table: readonly number[] | undefined;
    if (c.staging) for (const s of c.staging) if (s.layer === l) table = s.blocks;
    if (!table) {
      const t = this.tables.get(c.seq);
      if (!t) this.fail(`${what()}: computes with no tables`);
      if (t.tiers[l] !== 'device') this.fail(`${what()}: computes on its ${t.tiers[l]} table without staging`);
      table = t.tables[l];
    }
    const end = c.cachedBefore + c.tokens;
    const bs = this.blockSize;
    if (table.length < Math.ceil(end / bs)) this.fail(`${what()}: ${table.length} blocks cannot hold positions up to ${end}`);
    this.counts.computeLayers++;
    const dev = this.blocks.device;
    for (let i = 0; i * bs < end; i++) {
      const b = dev[table[i]];
      if (!b || b.owner !== c.seq) this.fail(`${what()}: uses device block ${table[i]}, owned by ${b?.owner ?? 'nobody (freed)'}`);
      if (b.writer !== null) this.fail(`${what()}: uses device block ${table[i]} while transfer ${b.writer} is still writing it`);
      const lo = i * bs;
      const needHi = Math.min(c.cachedBefore, lo + bs);
      const ct = b.content;
      if (needHi > lo && (!ct || ct.seq !== c.seq || ct.layer !== l || ct.lo > lo || ct.hi < needHi)) {
        this.fail(`${what()}: reads positions [${lo}, ${needHi}) from device block ${table[i]}, which holds ${ct ? `${ct.seq} layer ${ct.layer} [${ct.lo}, ${ct.hi})` : 'nothing'}`);
      }
      // Append the new positions that fall in this block.
      const wLo = Math.max(lo, c.cachedBefore);
      const wHi = Math.min(lo + bs, end);
      if (wHi > wLo) {
        if (b.readers.size > 0) this.fail(`${what()}: writes device block ${table[i]} while transfer ${[...b.readers][0]} reads it`);
        const keep = ct !== null && ct.seq === c.seq && ct.layer === l && ct.hi >= wLo;
        if (!keep && wLo > lo) this.fail(`${what()}: appends positions from ${wLo} to device block ${table[i]}, whose earlier positions [${lo}, ${wLo}) are missing`);
        b.content = keep ? { seq: c.seq, layer: l, lo: Math.min(ct.lo, wLo), hi: Math.max(ct.hi, wHi) } : { seq: c.seq, layer: l, lo: wLo, hi: wHi };
      }
    }
  }

  /** A transfer starts: its sources must hold KV of its request (or be written by a transfer
   *  it waits for), its destinations must be its request's. */
  private issue(plan: StepPlan, t: Transfer): void {
    const what = `step ${plan.step}: transfer ${t.id} (${t.kind} of ${t.seq})`;
    this.counts.transfers++;
    const deps = new Set(t.after ?? []);
    const result: Flight['result'] = [];
    let blocks = 0;
    if (t.kind === 'prefix-read') {
      if (!t.chunk) this.fail(`${what}: has no chunk`);
      const C = t.chunk.dest[0]?.blocks.length ?? 0;
      if (t.chunk.dest.length !== this.numLayers) this.fail(`${what}: lands ${t.chunk.dest.length} layers, the model has ${this.numLayers}`);
      for (const d of t.chunk.dest) {
        d.blocks.forEach((id, j) => {
          const b = this.block(d.tier, id, what);
          if (b.owner !== t.seq || b.kind !== 'landing') this.fail(`${what}: lands in ${d.tier} block ${id}, owned by ${b.owner ?? 'nobody'} (${b.kind})`);
          const lo = (t.chunk!.index * C + j) * this.blockSize;
          result.push([d.tier, id, { seq: t.seq, layer: d.layer, lo, hi: lo + this.blockSize }]);
        });
        blocks += d.blocks.length;
      }
    }
    for (const m of t.moves) {
      for (let i = 0; i < m.pairs.length; i += 2) {
        const src = this.block(m.from, m.pairs[i], what);
        const dst = this.block(m.to, m.pairs[i + 1], what);
        if (src.owner !== t.seq) this.fail(`${what}: reads ${m.from} block ${m.pairs[i]}, owned by ${src.owner ?? 'nobody (freed)'}`);
        if (dst.owner !== t.seq) this.fail(`${what}: writes ${m.to} block ${m.pairs[i + 1]}, owned by ${dst.owner ?? 'nobody (freed)'}`);
        let content = src.content;
        if (src.writer !== null) {
          if (!deps.has(src.writer)) this.fail(`${what}: reads ${m.from} block ${m.pairs[i]} while transfer ${src.writer} writes it, without waiting for it`);
          content = this.flights.get(src.writer)!.result.find(([tier, id]) => tier === m.from && id === m.pairs[i])![2];
        }
        if (!content || content.seq !== t.seq || content.layer !== m.layer) {
          this.fail(`${what}: copies ${m.from} block ${m.pairs[i]} of layer ${m.layer}, which holds ${content ? `${content.seq} layer ${content.layer}` : 'nothing'}`);
        }
        if (dst.writer !== null) this.fail(`${what}: writes ${m.to} block ${m.pairs[i + 1]} while transfer ${dst.writer} also writes it`);
        if (dst.readers.size > 0 && ![...dst.readers].every((r) => deps.has(r))) this.fail(`${what}: overwrites ${m.to} block ${m.pairs[i + 1]} while transfer ${[...dst.readers][0]} reads it`);
        result.push([m.to, m.pairs[i + 1], { ...content }]);
        src.readers.add(t.id);
        blocks++;
      }
    }
    if (t.bytes !== blocks * this.blockBytes) this.fail(`${what}: says ${t.bytes} bytes, moves ${blocks} blocks of ${this.blockBytes}`);
    if (t.kind === 'prefix-save') this.checkSave(what, t);
    let failed = t.kind === 'prefix-read' && this.failRead(t);
    if (failed) this.counts.failedReads++;
    for (const d of deps) if (this.flights.get(d)?.failed) failed = true;
    for (const [tier, id] of result) this.blocks[tier][id].writer = t.id;
    this.flights.set(t.id, { t, result, applied: false, failed });
    this.flying.set(t.seq, (this.flying.get(t.seq) ?? 0) + 1);
  }

  /** A transfer's copy is complete: its destinations hold what its sources held. */
  private apply(id: number, when: string): void {
    const f = this.flights.get(id);
    if (!f) this.fail(`transfer ${id} completes ${when} but is not in flight`);
    if (f.applied) return;
    f.applied = true;
    // What it waited for is complete too.
    for (const d of f.t.after ?? []) if (this.flights.has(d)) this.apply(d, `before transfer ${id}`);
    for (const [tier, b, content] of f.result) {
      const blk = this.blocks[tier][b];
      blk.writer = null;
      blk.content = f.failed ? null : content;
    }
    for (const m of f.t.moves) for (let i = 0; i < m.pairs.length; i += 2) this.blocks[m.from][m.pairs[i]].readers.delete(id);
  }

  /** Every block a save reads holds its layer's KV of exactly its positions in the chunk. */
  private checkSave(what: string, t: Transfer): void {
    if (!t.chunk) this.fail(`${what}: has no chunk`);
    this.counts.saves++;
    const layers = new Set<number>();
    for (const m of t.moves) {
      layers.add(m.layer);
      const nb = m.pairs.length / 2;
      for (let j = 0; j < nb; j++) {
        const src = this.blocks[m.from][m.pairs[2 * j]];
        const lo = (t.chunk.index * nb + j) * this.blockSize;
        const ct = src.writer !== null ? this.flights.get(src.writer)!.result.find(([tier, id]) => tier === m.from && id === m.pairs[2 * j])![2] : src.content;
        if (!ct || ct.seq !== t.seq || ct.layer !== m.layer || ct.lo > lo || ct.hi < lo + this.blockSize) {
          this.fail(`${what}: saves chunk ${t.chunk.index} layer ${m.layer} positions [${lo}, ${lo + this.blockSize}) from ${m.from} block ${m.pairs[2 * j]}, which holds ${ct ? `${ct.seq} layer ${ct.layer} [${ct.lo}, ${ct.hi})` : 'nothing'}`);
        }
      }
    }
    if (layers.size !== this.numLayers) this.fail(`${what}: saves ${layers.size} layers of chunk ${t.chunk.index}, the model has ${this.numLayers}`);
  }

  private landed(r: StepResult): void {
    for (const d of r.transfersDone) {
      this.apply(d.id, `at ${d.at}`);
      if (this.flights.get(d.id)!.failed) d.error = 'injected: the read failed';
      const seq = this.flights.get(d.id)!.t.seq;
      this.flights.delete(d.id);
      this.flying.set(seq, this.flying.get(seq)! - 1);
    }
  }
}
