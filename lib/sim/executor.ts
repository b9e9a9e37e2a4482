// The simulator's Executor: a virtual clock, with the GPU's compute and each I/O channel
// (d2h, h2d, storage) as separate FIFO resources. A step's compute time comes from the cost
// model and is split evenly over the layers, which is what per-layer overlap needs:
//   - a transfer with beforeLayer = l gates layer l (LayerKV's decode loads arrive ahead of
//     their layer; if they are late, the layer and everything after it wait);
//   - a transfer with afterLayer = l is ready when layer l's compute ends (LayerKV's offload
//     of layer l overlaps the layers after it);
//   - other transfers are ready at the step's start.
// Each channel serves its transfers in order of readiness within a step, in issue order
// across steps. Everything is deterministic: no wall clock, no randomness.
import type { Channel, Executor, StepPlan, StepResult, Transfer } from '../sched/plan.js';
import { MAX_TIME, MAX_TIME_TEXT } from '../workload/request.js';
import { show } from '../util/show.js';

export interface SimCost {
  readonly model: { numLayers: number };
  readonly gpu: { h2dBandwidth: number; d2hBandwidth: number; transferLatency: number };
  stepTime(items: readonly { phase: 'prefill' | 'decode'; tokens: number; cachedBefore: number }[]): number;
}

export interface SimExecutorOptions {
  /** Prefix-store read bandwidth, bytes/s (10 GB/s: a fast local NVMe array or RDMA). */
  storageBandwidth?: number;
  /** Latency of one prefix-store read, seconds (100 us). */
  storageLatency?: number;
  /** Clock at start, seconds. */
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
  private readonly cost: SimCost;
  private readonly numLayers: number;
  private readonly bandwidth: Record<Channel, number>;
  private readonly latency: Record<Channel, number>;
  private readonly channelFree: Record<Channel, number>;
  private readonly done = new CompletionHeap();
  private readonly seen = new Set<number>();
  private readonly gate: Float64Array;
  private readonly layerEnd: Float64Array;
  /** Seconds each resource was busy, for utilization reports. */
  readonly busy: Record<'compute' | Channel, number> = { compute: 0, h2d: 0, d2h: 0, storage: 0 };
  steps = 0;

  constructor(cost: SimCost, opts: SimExecutorOptions = {}) {
    if (!cost || typeof cost.stepTime !== 'function') throw new TypeError('SimExecutor: cost must be a CostModel');
    const L = cost.model.numLayers;
    if (!Number.isInteger(L) || L < 1) throw new RangeError(`SimExecutor: cost.model.numLayers must be a positive integer, got ${show(L)}`);
    const storageBw = opts.storageBandwidth ?? 10e9;
    const check = (name: string, v: number) => {
      // At least 1 byte/s: below that a transfer's time overflows to Infinity.
      if (!(typeof v === 'number' && v >= 1 && Number.isFinite(v))) throw new RangeError(`SimExecutor: ${name} must be a finite number of bytes/s >= 1, got ${show(v)}`);
    };
    check('gpu.h2dBandwidth', cost.gpu.h2dBandwidth);
    check('gpu.d2hBandwidth', cost.gpu.d2hBandwidth);
    check('storageBandwidth', storageBw);
    const storageLatency = opts.storageLatency ?? 100e-6;
    if (!(typeof storageLatency === 'number' && storageLatency >= 0 && Number.isFinite(storageLatency))) throw new RangeError(`SimExecutor: storageLatency must be a finite number of seconds >= 0, got ${show(storageLatency)}`);
    const lat = cost.gpu.transferLatency;
    if (!(typeof lat === 'number' && lat >= 0 && Number.isFinite(lat))) throw new RangeError(`SimExecutor: gpu.transferLatency must be a finite number of seconds >= 0, got ${show(lat)}`);
    // A NaN clock never reaches an arrival, and past MAX_TIME step times vanish into it.
    const start = opts.start ?? 0;
    if (typeof start !== 'number' || !(start >= 0 && start <= MAX_TIME)) throw new RangeError(`SimExecutor: start must be a time in [0, ${MAX_TIME_TEXT}] s, got ${show(start)}`);
    this.cost = cost;
    this.numLayers = L;
    this.clock = start;
    this.bandwidth = { h2d: cost.gpu.h2dBandwidth, d2h: cost.gpu.d2hBandwidth, storage: storageBw };
    this.latency = { h2d: cost.gpu.transferLatency, d2h: cost.gpu.transferLatency, storage: storageLatency };
    this.channelFree = { h2d: this.clock, d2h: this.clock, storage: this.clock };
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

  /** execute() without the promise, for tight simulation loops. */
  executeSync(plan: StepPlan): StepResult {
    const start = this.clock;
    const L = this.numLayers;
    const ts = plan.transfers;
    this.gate.fill(start);
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i];
      if (t.afterLayer !== undefined) continue;
      const at = this.enqueue(t, start);
      if (t.beforeLayer !== undefined) {
        this.checkLayer(t, 'beforeLayer', t.beforeLayer);
        if (at > this.gate[t.beforeLayer]) this.gate[t.beforeLayer] = at;
      }
    }
    let end = start;
    if (plan.compute.length > 0) {
      const t = this.cost.stepTime(plan.compute);
      if (!(t >= 0 && Number.isFinite(t))) throw new RangeError(`SimExecutor: cost.stepTime must return a finite number of seconds >= 0, got ${t} for step ${plan.step}`);
      const per = t / L;
      let clock = start;
      for (let l = 0; l < L; l++) {
        clock = Math.max(clock, this.gate[l]) + per;
        this.layerEnd[l] = clock;
      }
      end = clock;
      this.busy.compute += per * L;
    } else {
      this.layerEnd.fill(start);
    }
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i];
      if (t.afterLayer === undefined) continue;
      this.checkLayer(t, 'afterLayer', t.afterLayer);
      this.enqueue(t, this.layerEnd[t.afterLayer]);
    }
    this.clock = end;
    this.steps++;
    return { start, end, transfersDone: this.drain(end) };
  }

  async idle(until: number): Promise<StepResult> {
    return this.idleSync(until);
  }

  idleSync(until: number): StepResult {
    const start = this.clock;
    const target = Math.min(until, this.done.peek());
    if (target > this.clock && Number.isFinite(target)) this.clock = target;
    return { start, end: this.clock, transfersDone: this.drain(this.clock) };
  }

  private checkLayer(t: Transfer, field: string, l: number): void {
    if (!Number.isInteger(l) || l < 0 || l >= this.numLayers) {
      throw new RangeError(`SimExecutor: transfer ${t.id} ${field} must be a layer in [0, ${this.numLayers}), got ${l}`);
    }
  }

  private enqueue(t: Transfer, ready: number): number {
    if (this.seen.has(t.id)) throw new Error(`SimExecutor: transfer id ${t.id} issued twice`);
    const bw = this.bandwidth[t.channel];
    if (bw === undefined) throw new RangeError(`SimExecutor: transfer ${t.id} has unknown channel ${String(t.channel)}`);
    if (!(t.bytes >= 0)) throw new RangeError(`SimExecutor: transfer ${t.id} bytes must be >= 0, got ${t.bytes}`);
    this.seen.add(t.id);
    const begin = Math.max(this.channelFree[t.channel], ready);
    const dur = t.bytes / bw + this.latency[t.channel];
    const at = begin + dur;
    this.channelFree[t.channel] = at;
    this.busy[t.channel] += dur;
    this.done.push(at, t.id);
    return at;
  }

  private drain(upTo: number): { id: number; at: number }[] {
    const out: { id: number; at: number }[] = [];
    while (this.done.size > 0 && this.done.peek() <= upTo) {
      const d = this.done.pop();
      this.seen.delete(d.id);
      out.push(d);
    }
    return out;
  }
}
