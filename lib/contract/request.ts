// What a client asks for. Times are seconds on the clock of whoever runs the plans (virtual
// in the simulator, wall in the engine).

/** A prompt prefix whose KV may be in the prefix store (Cake). */
export interface PrefixInfo {
  /** Tokens per stored chunk (a multiple of the block size). */
  chunkTokens: number;
  /** Chained chunk keys of the prompt, front to back; one per full chunk. */
  chunkHashes: readonly string[];
  /** How many leading chunks the store holds (a hit is always a prefix of the chain). */
  storedChunks: number;
}

/** How the executor picks each output token. Greedy when temperature is 0 or absent. */
export interface SamplingParams {
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of the request's sampler: the same seed gives the same tokens in any batch. */
  seed?: number;
}

export interface Request {
  id: string;
  /** Arrival time, seconds. */
  arrival: number;
  promptLen: number;
  /** Prompt token ids (promptLen of them) when known: an executor that runs a model needs
   *  them, the simulator does not. */
  promptTokens?: Int32Array;
  /** Output tokens at most. */
  maxNewTokens: number;
  /** Sampling any of these ends the request (EOS and the caller's stop tokens). The token is
   *  emitted and counted. */
  stopTokenIds?: readonly number[];
  sampling?: SamplingParams;
  /** Time-to-first-token SLO, seconds. */
  ttftSlo?: number;
  /** Time-per-output-token SLO, seconds. */
  tpotSlo?: number;
  prefix?: PrefixInfo;
}

/**
 * Latest time a request may arrive (and a simulated clock may start), seconds: about 31.7
 * years. A double still tells times 0.12 us apart there; at 1e15 s its spacing is 0.125 s,
 * longer than a decode step, and step times would vanish into the clock.
 */
export const MAX_TIME = 1e9;
