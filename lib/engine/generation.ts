// A request's side of the engine: the arrivals queue the step loop takes requests from, and
// each request's stream (tokens pushed by the loop, pulled by the caller's iterator, text
// decoded incrementally with stop strings cut).
import type { Request } from '../contract/request.js';
import type { Arrivals } from '../loop/step-loop.js';
import type { DetokenizerStream } from '../model/tokenizer.js';
import type { Generation, GenerationResult, TokenChunk } from './types.js';

/** Requests from generate(), handed to the step loop as they come. */
export class LiveArrivals implements Arrivals {
  private queue: Request[] = [];
  private poked = false;
  private waiter: (() => void) | null = null;
  open = true;

  push(r: Request): void {
    this.queue.push(r);
    this.poke();
  }
  /** Something changed (an arrival, an abort, close): the loop looks again. */
  poke(): void {
    this.poked = true;
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
  /** Requests pushed and not yet taken by the loop. */
  get pending(): number {
    return this.queue.length;
  }
  take(): Request[] {
    const out = this.queue;
    this.queue = [];
    return out;
  }
  next(): number {
    return Infinity;
  }
  /** Withdraws a request the loop has not taken yet; false when it was taken. */
  remove(id: string): boolean {
    const i = this.queue.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }
  wake(): Promise<void> {
    if (this.poked) {
      this.poked = false;
      return Promise.resolve();
    }
    return new Promise((res) => {
      this.waiter = () => {
        this.poked = false;
        res();
      };
    });
  }
}

/** One request's stream: tokens pushed by the loop, pulled by the caller's iterator. */
export class GenerationState implements Generation {
  readonly result: Promise<GenerationResult>;
  private resolveResult!: (r: GenerationResult) => void;
  private rejectResult!: (e: Error) => void;
  private chunks: TokenChunk[] = [];
  private pull: (() => void) | null = null;
  private ended = false;
  private error: Error | null = null;
  readonly tokenIds: number[] = [];
  text = '';
  firstAt = NaN;
  lastAt = NaN;
  preemptions = 0;
  /** Set when the engine ended the request for a stop string (reported as 'stop'). */
  stoppedByString = false;
  /** Decoded text not streamed yet because it may be the start of a stop string. */
  held = '';
  /** Prompt tokens whose KV came from the prefix store. */
  cachedTokens = 0;

  constructor(
    readonly requestId: string,
    readonly promptTokens: number,
    readonly startedAt: number,
    readonly detok: DetokenizerStream | null,
    readonly stopStrings: readonly string[],
    readonly onCancel: () => void,
  ) {
    this.result = new Promise((res, rej) => {
      this.resolveResult = res;
      this.rejectResult = rej;
    });
    // A caller that only iterates must not see an unhandled rejection from `result`.
    this.result.catch(() => {});
  }

  /** Streams a sampled token's text, holding back a tail that may begin a stop string.
   *  True when a stop string matched: the text is cut before it and the request must end. */
  pushToken(token: number): boolean {
    let text = this.detok ? this.detok.push(token) : '';
    if (this.stopStrings.length > 0) {
      // this.text is what was streamed; a stop string can only begin after it, because a
      // tail that could begin one is held back until it can no longer.
      const before = this.text.length;
      const tail = this.held + text;
      const all = this.text + tail;
      let cut = -1;
      for (const s of this.stopStrings) {
        const at = all.indexOf(s, before);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        this.held = '';
        this.text = all.slice(0, cut);
        this.stoppedByString = true;
        this.push({ tokenId: token, text: all.slice(before, cut) });
        return true;
      }
      let hold = 0;
      for (const s of this.stopStrings) {
        for (let k = Math.min(s.length - 1, tail.length); k > hold; k--) {
          if (all.endsWith(s.slice(0, k))) {
            hold = k;
            break;
          }
        }
      }
      text = tail.slice(0, tail.length - hold);
      this.held = tail.slice(tail.length - hold);
    }
    this.text += text;
    this.push({ tokenId: token, text });
    return false;
  }

  push(c: TokenChunk): void {
    this.chunks.push(c);
    this.wakeReader();
  }

  finish(r: GenerationResult): void {
    this.ended = true;
    this.resolveResult(r);
    this.wakeReader();
  }

  fail(e: Error): void {
    this.ended = true;
    this.error = e;
    this.rejectResult(e);
    this.wakeReader();
  }

  private wakeReader(): void {
    const p = this.pull;
    this.pull = null;
    p?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<TokenChunk> {
    return {
      next: async (): Promise<IteratorResult<TokenChunk>> => {
        for (;;) {
          const c = this.chunks.shift();
          if (c) return { value: c, done: false };
          if (this.error) throw this.error;
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((res) => (this.pull = res));
        }
      },
      // A caller that stops iterating early cancels the request.
      return: async (): Promise<IteratorResult<TokenChunk>> => {
        if (!this.ended) this.onCancel();
        return { value: undefined, done: true };
      },
    };
  }
}
