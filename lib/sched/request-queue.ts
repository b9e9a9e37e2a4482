// The waiting queue. First come, first served; a preempted request goes back to the front
// (it has waited longest, and a swapped one still holds KV on the host). With SLO-aware
// admission the queue is served in TTFT-deadline order instead, preempted requests still
// first.
import type { SeqState } from './request-state.js';

export class RequestQueue {
  private items: SeqState[] = [];

  get length(): number {
    return this.items.length;
  }

  [Symbol.iterator](): IterableIterator<SeqState> {
    return this.items[Symbol.iterator]();
  }

  push(s: SeqState): void {
    this.items.push(s);
  }

  /** A preempted request: served before every new arrival. */
  pushFront(s: SeqState): void {
    this.items.unshift(s);
  }

  /** Removes a request wherever it waits; false when it is not queued. */
  remove(s: SeqState): boolean {
    const i = this.items.indexOf(s);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }

  /** Drops the first n (admitted this step). */
  shift(n: number): void {
    if (n > 0) this.items.splice(0, n);
  }

  /** Deadline order for SLO-aware admission; preempted requests keep their place in front. */
  sortByDeadline(): void {
    this.items.sort(byDeadline);
  }
}

function byDeadline(a: SeqState, b: SeqState): number {
  if (a.admittedOnce !== b.admittedOnce) return a.admittedOnce ? -1 : 1;
  return a.deadline - b.deadline || a.order - b.order;
}
