// The plan of the step being built, with its token budget and its cost so far. Parts of the
// scheduler ask what the step would cost with one more item without adding it to the plan.
import type { CostItem, CostModel } from '../cost/cost-model.js';
import type { ComputeItem, SeqId, StepPlan } from '../contract/plan.js';

export class StepBuilder {
  readonly plan: StepPlan;
  /** Tokens still free under maxBatchedTokens. */
  budget: number;
  private readonly cost: CostModel;
  /** The plan's compute items plus room for one candidate: estimates never touch the plan. */
  private readonly scratch: CostItem[] = [];

  constructor(step: number, maxBatchedTokens: number, cost: CostModel) {
    this.plan = { step, compute: [], transfers: [], tables: [], staged: [], landing: [], freed: [], preempted: [], ended: [] };
    this.budget = maxBatchedTokens;
    this.cost = cost;
  }

  add(item: ComputeItem): void {
    this.plan.compute.push(item);
    this.scratch.push(item);
    this.budget -= item.tokens;
  }

  /** Drops what was planned for `seq` (it was preempted later in the same step). */
  remove(seq: SeqId): void {
    const keep = this.plan.compute.filter((c) => c.seq !== seq);
    for (const c of this.plan.compute) if (c.seq === seq) this.budget += c.tokens;
    this.plan.compute = keep;
    this.scratch.length = 0;
    this.scratch.push(...keep);
  }

  has(seq: SeqId): boolean {
    return this.plan.compute.some((c) => c.seq === seq);
  }

  /** Seconds of the step as planned so far. */
  time(): number {
    return this.cost.stepTime(this.plan.compute);
  }

  /** Seconds of the step with `extra` added. */
  timeWith(extra: CostItem): number {
    this.scratch.push(extra);
    try {
      return this.cost.stepTime(this.scratch);
    } finally {
      this.scratch.pop();
    }
  }

  /** Prefill tokens computed in the step so far. */
  get computeTokens(): number {
    let n = 0;
    for (const c of this.plan.compute) n += c.tokens;
    return n;
  }
}
