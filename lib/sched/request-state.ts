// One request as the scheduler tracks it, with an explicit state:
//
//   waiting ──admit──▶ prefilling ──last chunk──▶ decoding ──max tokens / stop──▶ finished
//      ▲                   │                          │
//      └──── recompute ────┴──────── preempt ─────────┤
//                                                     └─ swap ─▶ swapped ──swap-in──▶ decoding
//   (any state) ──abort──▶ aborted
//
// `hold` is the KV an admission holds. Transfers keep it alive after the request lets go of it
// (preempted by recompute, aborted, finished with copies still in flight): its blocks return
// to the pools when the last of those copies completes.
import type { Request } from '../contract/request.js';
import type { SeqId } from '../contract/plan.js';
import type { SeqKv } from '../kv/kv-cache-manager.js';

export type SeqStatus = 'waiting' | 'prefilling' | 'decoding' | 'swapped' | 'finished' | 'aborted';

export interface Hold {
  kv: SeqKv;
  /** Transfers in flight that read or write these blocks. */
  inflight: number;
  /** Those of them the request must see land before it computes again: all but offloads,
   *  which the transfers that read their destination wait for natively (`after`). */
  waits: number;
  /** Prefix saves owed and not yet issued (cake/saver.ts): they will read these blocks. */
  owed: number;
  /** The request no longer uses this KV: give it back once inflight and owed reach 0. */
  dropped: boolean;
}

export class SeqState {
  readonly req: Request;
  readonly id: SeqId;
  /** Arrival order (FCFS ties). */
  readonly order: number;
  status: SeqStatus = 'waiting';
  /** Tokens whose KV the prefill must produce: the prompt, plus the output so far when
   *  recomputing after a preemption. */
  target: number;
  /** Tokens with KV in place. */
  computed = 0;
  /** Sampled token ids, in order. */
  readonly output: number[] = [];
  firstTokenAt = NaN;
  hold: Hold | null = null;
  /** Layers whose table is on the host (LayerKV), in layer order. */
  hostLayers: number[] = [];
  /** Admitted at least once (a preempted request rejoins the queue at its front). */
  admittedOnce = false;
  /** Prompt tokens whose KV was loaded from the prefix store (set when the prefill ends). */
  loadedTokens = 0;

  constructor(req: Request, order: number) {
    this.req = req;
    this.id = req.id;
    this.order = order;
    this.target = req.promptLen;
  }

  get generated(): number {
    return this.output.length;
  }

  get running(): boolean {
    return this.status === 'prefilling' || this.status === 'decoding';
  }

  get ended(): boolean {
    return this.status === 'finished' || this.status === 'aborted';
  }

  /** Token ids of positions [start, start + n): prompt tokens, then the request's own output.
   *  Undefined when the request carries no prompt ids (the simulator). */
  tokenIds(start: number, n: number): Int32Array | undefined {
    const prompt = this.req.promptTokens;
    if (!prompt) return undefined;
    const P = this.req.promptLen;
    if (start + n <= P) return prompt.subarray(start, start + n);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const pos = start + i;
      out[i] = pos < P ? prompt[pos] : this.output[pos - P];
    }
    return out;
  }

  /** TTFT deadline, for SLO-aware ordering. */
  get deadline(): number {
    return this.req.arrival + (this.req.ttftSlo ?? 1e9);
  }
}
