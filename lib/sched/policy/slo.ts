// SLO-aware admission and step sizing (LayerKV): admit in TTFT-deadline order, and size
// prefill chunks so that no decoding request misses its TPOT SLO because of a long step.
import type { SeqState } from '../request-state.js';
import type { StepBuilder } from '../step-builder.js';

export class SloStepSizer {
  constructor(
    private readonly blockSize: number,
    /** Smallest chunk the oldest running prefill gets when TPOT slack is exhausted, so
     *  chunking cannot starve it. */
    private readonly minPrefillChunk: number,
  ) {}

  /** The longest step that keeps every decoding request with a TPOT SLO within it: a request
   *  that has emitted n tokens after its first, over e seconds, can take its next token after
   *  T seconds as long as (e + T) / (n + 1) <= SLO. Its accumulated slack is usable; a step is
   *  never held below one SLO, so a request already behind does not stop all admissions. */
  stepLimit(now: number, running: readonly SeqState[]): number {
    let limit = Infinity;
    for (const s of running) {
      const slo = s.req.tpotSlo;
      if (slo === undefined || s.status !== 'decoding') continue;
      const n = s.generated - 1;
      const slack = slo * (n + 1) - (now - s.firstTokenAt);
      limit = Math.min(limit, Math.max(slack, slo));
    }
    return limit;
  }

  /** The largest chunk (<= want) whose step stays within `limit`; with `guaranteed`, at least
   *  min(want, minPrefillChunk) so the oldest prefill always moves. */
  sizeChunk(b: StepBuilder, cachedBefore: number, want: number, limit: number, guaranteed: boolean): number {
    return sizeToLimit(b, cachedBefore, want, limit, guaranteed ? Math.min(want, this.minPrefillChunk) : 0, this.blockSize);
  }
}

/** The largest prefill chunk in [floor, want] after `cachedBefore` whose step stays within
 *  `limit` seconds, to `granularity` tokens (step time grows with the chunk). */
export function sizeToLimit(b: StepBuilder, cachedBefore: number, want: number, limit: number, floor: number, granularity: number): number {
  if (want <= 0) return 0;
  if (limit === Infinity) return want;
  const at = (tokens: number) => b.timeWith({ phase: 'prefill', tokens, cachedBefore });
  if (at(want) <= limit) return want;
  let lo = floor;
  let hi = want;
  while (hi - lo > granularity) {
    const mid = (lo + hi) >> 1;
    if (at(mid) <= limit) lo = mid;
    else hi = mid;
  }
  return lo;
}
