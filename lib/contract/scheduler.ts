// What a step loop needs of a scheduler. The scheduler never learns who runs its plans.
import type { SeqEvent } from './events.js';
import type { Request } from './request.js';
import type { SeqId, StepPlan, StepResult } from './plan.js';

export interface Scheduler {
  readonly name: string;
  /** A request arrives (now >= its arrival). A request that can never run is rejected: the
   *  next onResult reports a 'rejected' event naming the field and the limit. */
  add(req: Request, now: number): void;
  /** Cancels a request in any state. Its blocks are freed once transfers touching them have
   *  completed, and the next onResult reports an 'aborted' event. False when the id is not
   *  a live request. */
  abort(seq: SeqId, reason?: string): boolean;
  /** The next step's plan. An empty plan (no compute, no transfers) means "wait". */
  schedule(now: number): StepPlan;
  /** The executor's report for `plan`; returns what happened to requests. */
  onResult(plan: StepPlan, result: StepResult): SeqEvent[];
  /** Any request still waiting, running or transferring, or events not yet reported. */
  hasWork(): boolean;
}
