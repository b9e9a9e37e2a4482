// What a client asks of the server. Times are seconds on the clock of whoever runs the
// plan (virtual in the simulator, wall in the engine).

/** A prompt prefix whose KV may be in the prefix store (Cake). */
export interface PrefixInfo {
  /** Tokens per stored chunk (a multiple of the block size). */
  chunkTokens: number;
  /** Chained chunk hashes of the prompt, front to back; one per full chunk. */
  chunkHashes: readonly string[];
  /** How many leading chunks the store holds (a hit is always a prefix of the chain). */
  storedChunks: number;
}

export interface Request {
  id: string;
  /** Arrival time, seconds. */
  arrival: number;
  promptLen: number;
  /** Prompt token ids when known (the engine needs them; the simulator does not). */
  promptTokens?: Int32Array;
  maxNewTokens: number;
  /** Time-to-first-token SLO, seconds. */
  ttftSlo?: number;
  /** Time-per-output-token SLO, seconds. */
  tpotSlo?: number;
  prefix?: PrefixInfo;
}
