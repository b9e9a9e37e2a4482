// When the loads on one read channel are expected to land, corrected by the landings seen.
//
// The channel delivers one load after another, but not necessarily in issue order: a
// store's reader threads take reads as they come, so the second load issued may land
// first. Nor are landings always reported in the order they happened (several land within
// one step and are reported together). What stays true is the channel's pace: the j-th
// landing, in time, fills the j-th slot of the schedule. So every load keeps the slot the
// schedule gave it when issued, and one lateness, the latest landing against the slot of
// its rank, shifts every slot still in flight. With landings in issue order this is the
// same as shifting the loads behind each landing by its error; unlike that, a load that
// overtakes an earlier one does not move the rest a slot early.
export class LoadSlots<K> {
  /** Slot of each load in flight (schedule time: before lateness). */
  private readonly inFlight = new Map<K, number>();
  /** Every slot given out since the channel last drained, ascending (each load starts no
   *  earlier than the one before it ends). */
  private schedule: number[] = [];
  private landed = 0;
  private latestLanding = -Infinity;
  private lateness = 0;

  get size(): number {
    return this.inFlight.size;
  }

  /** When the channel is expected to have delivered every load in flight (the last slot);
   *  once drained, its latest landing (-Infinity before any). */
  get end(): number {
    return this.inFlight.size > 0 ? this.schedule[this.schedule.length - 1] + this.lateness : this.latestLanding;
  }

  /** Expected landing of a load in flight: its own slot, shifted (undefined for an unknown key). */
  expected(key: K): number | undefined {
    const slot = this.inFlight.get(key);
    return slot === undefined ? undefined : slot + this.lateness;
  }

  /** A load of `seconds` issued at `now` starts once the channel (and `notBefore`) frees up;
   *  returns when it is expected to land. */
  add(key: K, now: number, seconds: number, notBefore = -Infinity): number {
    if (this.inFlight.size === 0) {
      this.schedule = [];
      this.landed = 0;
      this.lateness = 0;
    }
    const at = Math.max(now, this.end, notBefore) + seconds;
    this.inFlight.set(key, at - this.lateness);
    this.schedule.push(at - this.lateness);
    return at;
  }

  /** The load `key` landed (or failed) at `at`; without a time it only leaves the channel. */
  land(key: K, at?: number): void {
    if (!this.inFlight.delete(key)) return;
    const rank = this.landed++;
    if (at === undefined || !Number.isFinite(at)) return;
    this.latestLanding = Math.max(this.latestLanding, at);
    this.lateness = this.latestLanding - this.schedule[rank];
  }
}
