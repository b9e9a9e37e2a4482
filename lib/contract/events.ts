// What a scheduler reports about requests; streams and metrics are built from these.
import type { SeqId } from './plan.js';

export type FinishReason = 'length' | 'stop';

export interface SeqEvent {
  seq: SeqId;
  kind: 'first-token' | 'token' | 'finished' | 'preempted' | 'rejected' | 'aborted';
  at: number;
  /** The emitted token id (first-token and token events). */
  token?: number;
  /** Why a request finished: its token budget, or a stop token. */
  finishReason?: FinishReason;
  /** Prompt tokens whose KV was loaded from the prefix store (first-token events of
   *  requests that carry a prefix). */
  cachedTokens?: number;
  /** Why a request was rejected or aborted (rejections name the field and the limit). */
  reason?: string;
}
