// The simulator's Executor: a virtual clock, with the GPU's compute and each I/O channel
// (d2h, h2d, storage) as separate in-order resources, exactly as the contract orders them
// (lib/contract/plan.ts): a step's compute time comes from the cost model and is split evenly
// over the layers; a transfer is ready at the step's start, after layer afterLayer, and after
// the transfers in `after`; each channel takes the plan's transfers by stage, in issue order
// within a stage; layer beforeLayer waits for its transfer. Where the cost model says the
// copies share the compute cores (cost.copiesShareCompute: the CPU backend), a step's compute
// also takes the time of the h2d and d2h copies it carries; where it has a wake cost
// (cost.wake), a step that follows a stretch without compute takes that much longer.
// Everything is deterministic: no wall clock, no randomness. It computes no tokens: every
// emitting item samples PLACEHOLDER_TOKEN.
import { checkWake, type ChannelSpec, type CostModel } from '../cost/cost-model.js';
import { MAX_TIME } from '../contract/request.js';
import { show } from '../util/show.js';
import { PLACEHOLDER_TOKEN, type Channel, type Executor, type SampledToken, type StepPlan, type StepResult, type Transfer } from '../contract/plan.js';

export interface SimExecutorOptions {
  /** Override the cost model's prefix-store read bandwidth, bytes/s (to emulate a store
   *  slower or faster than the scheduler assumes). */
  storageBandwidth?: number;
  /** Override the cost model's prefix-store latency per read, seconds. */
  storageLatency?: number;
  /** Clock at start, seconds (0). */
  start?: number;
}

/** A min-heap of (at, id): completions come out in time order, ties by issue order. */
class CompletionHeap {
  private at: number[] = [];
  private id: number[] = [];
  get size(): number {
    return this.at.length;
  }
  peek(): number {
    return this.at.length > 0 ? this.at[0] : Infinity;
  }
  private less(i: number, j: number): boolean {
    return this.at[i] < this.at[j] || (this.at[i] === this.at[j] && this.id[i] < this.id[j]);
  }
  private swap(i: number, j: number): void {
    [this.at[i], this.at[j]] = [this.at[j], this.at[i]];
    [this.id[i], this.id[j]] = [this.id[j], this.id[i]];
  }
  push(at: number, id: number): void {
    this.at.push(at);
    this.id.push(id);
    let i = this.at.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { id: number; at: number } {
    const out = { id: this.id[0], at: this.at[0] };
    const lastAt = this.at.pop()!;
    const lastId = this.id.pop()!;
    if (this.at.length > 0) {
      this.at[0] = lastAt;
      this.id[0] = lastId;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.at.length && this.less(l, m)) m = l;
        if (r < this.at.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return out;
  }
}

export class SimExecutor implements Executor {
  private clock: number;
  private readonly cost: CostModel;
  private readonly numLayers: number;
  private readonly channels: Record<Channel, ChannelSpec>;
  private readonly channelFree: Record<Channel, number>;
  private readonly done = new CompletionHeap();
  /** Completion time of every transfer in flight. */
  private readonly doneAt = new Map<number, number>();
  private readonly gate: Float64Array;
  private readonly layerEnd: Float64Array;
  /** End of the last step that computed (the start clock before any). */
  private lastCompute: number;
  /** Seconds each resource was busy, for utilization reports. */
  readonly busy: Record<'compute' | Channel, number> = { compute: 0, h2d: 0, d2h: 0, storage: 0 };
  steps = 0;

  constructor(cost: CostModel, opts: SimExecutorOptions = {}) {
    if (!cost || typeof cost.stepTime !== 'function' || typeof cost.channel !== 'function') throw new TypeError('SimExecutor: cost must be a CostModel (lib/cost)');
    const L = cost.numLayers;
    if (!Number.isInteger(L) || L < 1) throw new RangeError(`SimExecutor: cost.numLayers must be a positive integer, got ${L}`);
    const spec = (c: Channel, bw?: number, lat?: number): ChannelSpec => {
      const base = cost.channel(c);
      const out = { bandwidth: bw ?? base.bandwidth, latency: lat ?? base.latency };
      const name = c === 'storage' ? 'storageBandwidth' : `cost.channel('${c}').bandwidth`;
      // At least 1 byte/s: below that a transfer's time overflows to Infinity.
      if (!(typeof out.bandwidth === 'number' && out.bandwidth >= 1 && Number.isFinite(out.bandwidth))) throw new RangeError(`SimExecutor: ${name} must be a finite number of bytes/s >= 1, got ${show(out.bandwidth)}`);
      if (!(typeof out.latency === 'number' && out.latency >= 0 && Number.isFinite(out.latency))) throw new RangeError(`SimExecutor: ${c === 'storage' ? 'storageLatency' : `cost.channel('${c}').latency`} must be a finite number of seconds >= 0, got ${show(out.latency)}`);
      return out;
    };
    // A NaN clock never reaches an arrival, and past MAX_TIME step times vanish into it.
    const start = opts.start ?? 0;
    if (typeof start !== 'number' || !(start >= 0 && start <= MAX_TIME)) throw new RangeError(`SimExecutor: start must be a time in [0, 1e9] s, got ${show(start)}`);
    this.cost = cost;
    this.numLayers = L;
    this.clock = start;
    this.lastCompute = start;
    if (cost.wake !== undefined) checkWake('SimExecutor: cost', cost.wake);
    this.channels = { h2d: spec('h2d'), d2h: spec('d2h'), storage: spec('storage', opts.storageBandwidth, opts.storageLatency) };
    this.channelFree = { h2d: start, d2h: start, storage: start };
    this.gate = new Float64Array(L);
    this.layerEnd = new Float64Array(L);
  }

  get now(): number {
    return this.clock;
  }

  get pendingTransfers(): number {
    return this.done.size;
  }

  async execute(plan: StepPlan): Promise<StepResult> {
    return this.executeSync(plan);
  }

  /** execute() without the promise, for tests that step by hand. */
  executeSync(plan: StepPlan): StepResult {
    const start = this.clock;
    const L = this.numLayers;
    const ts = plan.transfers;
    // Stage of each transfer: the last layer it follows, directly or through `after`.
    const index = new Map<number, number>();
    const stage = new Int32Array(ts.length);
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i];
      if (index.has(t.id) || this.doneAt.has(t.id)) throw new Error(`SimExecutor: transfer id ${t.id} issued twice`);
      index.set(t.id, i);
      let st = -1;
      if (t.afterLayer !== undefined) st = this.checkLayer(t, 'afterLayer', t.afterLayer);
      for (const d of t.after ?? []) {
        const j = index.get(d);
        if (j !== undefined) st = Math.max(st, stage[j]);
        else if (!this.doneAt.has(d) && ts.some((u) => u.id === d)) throw new Error(`SimExecutor: transfer ${t.id} waits for transfer ${d}, issued after it`);
      }
      if (t.beforeLayer !== undefined && this.checkLayer(t, 'beforeLayer', t.beforeLayer) <= st) {
        throw new Error(`SimExecutor: transfer ${t.id} gates layer ${t.beforeLayer} but is ready only after layer ${st}`);
      }
      stage[i] = st;
    }
    const byStage: number[][] = Array.from({ length: L + 1 }, () => []);
    for (let i = 0; i < ts.length; i++) byStage[stage[i] + 1].push(i);
    const enqueueStage = (st: number, ready: number) => {
      for (const i of byStage[st + 1]) {
        const t = ts[i];
        let r = ready;
        for (const d of t.after ?? []) r = Math.max(r, this.doneAt.get(d) ?? r);
        const at = this.enqueue(t, r);
        if (t.beforeLayer !== undefined && at > this.gate[t.beforeLayer]) this.gate[t.beforeLayer] = at;
      }
    };
    this.gate.fill(start);
    enqueueStage(-1, start);
    let end = start;
    if (plan.compute.length > 0) {
      let t = this.cost.stepTime(plan.compute);
      if (!(t >= 0 && Number.isFinite(t))) throw new RangeError(`SimExecutor: cost.stepTime must return a finite number of seconds >= 0, got ${t} for step ${plan.step}`);
      // Copies done by the compute cores lengthen the step by their own time (they still
      // complete on their channel's clock, for the layers and transfers that wait on them).
      if (this.cost.copiesShareCompute === true) for (const tr of ts) if (tr.channel !== 'storage') t += this.cost.transferTime(tr.bytes, tr.channel);
      const wake = this.cost.wake;
      if (wake && start - this.lastCompute >= wake.afterIdleSeconds) t += wake.seconds;
      const per = t / L;
      let clock = start;
      for (let l = 0; l < L; l++) {
        clock = Math.max(clock, this.gate[l]) + per;
        this.layerEnd[l] = clock;
        enqueueStage(l, clock);
      }
      end = clock;
      this.lastCompute = end;
      this.busy.compute += per * L;
    } else {
      for (let l = 0; l < L; l++) enqueueStage(l, start);
    }
    this.clock = end;
    this.steps++;
    const sampled: SampledToken[] = [];
    for (const c of plan.compute) if (c.emitsToken) sampled.push({ seq: c.seq, token: PLACEHOLDER_TOKEN });
    return { start, end, transfersDone: this.drain(end), sampled };
  }

  async idle(until: number, _wake?: Promise<unknown>): Promise<StepResult> {
    return this.idleSync(until);
  }

  idleSync(until: number): StepResult {
    const start = this.clock;
    const target = Math.min(until, this.done.peek());
    if (target > this.clock && Number.isFinite(target)) this.clock = target;
    return { start, end: this.clock, transfersDone: this.drain(this.clock), sampled: [] };
  }

  private checkLayer(t: Transfer, field: string, l: number): number {
    if (!Number.isInteger(l) || l < 0 || l >= this.numLayers) {
      throw new RangeError(`SimExecutor: transfer ${t.id} ${field} must be a layer in [0, ${this.numLayers}), got ${l}`);
    }
    return l;
  }

  private enqueue(t: Transfer, ready: number): number {
    const ch = this.channels[t.channel];
    if (ch === undefined) throw new RangeError(`SimExecutor: transfer ${t.id} has unknown channel ${String(t.channel)}`);
    if (!(t.bytes >= 0)) throw new RangeError(`SimExecutor: transfer ${t.id} bytes must be >= 0, got ${t.bytes}`);
    const begin = Math.max(this.channelFree[t.channel], ready);
    const dur = t.bytes / ch.bandwidth + ch.latency;
    const at = begin + dur;
    this.channelFree[t.channel] = at;
    this.busy[t.channel] += dur;
    this.done.push(at, t.id);
    this.doneAt.set(t.id, at);
    return at;
  }

  private drain(upTo: number): { id: number; at: number }[] {
    const out: { id: number; at: number }[] = [];
    while (this.done.size > 0 && this.done.peek() <= upTo) {
      const d = this.done.pop();
      this.doneAt.delete(d.id);
      out.push(d);
    }
    return out;
  }
}
