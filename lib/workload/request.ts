// What a client asks of the server. Times are seconds on the clock of whoever runs the
// plan (virtual in the simulator, wall in the engine).
import { show } from '../util/show.js';

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

/**
 * Latest time a request may arrive (and a simulated clock may start), seconds: about 31.7
 * years. A double still tells times 0.12 us apart there; at 1e15 s its spacing is 0.125 s,
 * longer than a decode step, and step times would vanish into the clock.
 */
export const MAX_TIME = 1e9;
/** MAX_TIME as messages print it. */
export const MAX_TIME_TEXT = '1e9';

/**
 * What is wrong with `req` as a Request, or null: types, ranges and the prefix's shape.
 * Capacity and block-size checks belong to the scheduler that admits it.
 */
export function requestProblem(req: unknown): string | null {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return `request must be an object, got ${show(req)}`;
  const r = req as Record<string, unknown>;
  if (typeof r.id !== 'string' || r.id.length === 0) return `request.id must be a non-empty string, got ${show(r.id)}`;
  const int = (name: string, min: number): string | null => {
    const v = r[name];
    return Number.isSafeInteger(v) && (v as number) >= min ? null : `${name} must be an integer >= ${min}, got ${show(v)}`;
  };
  const bad = int('promptLen', 1) ?? int('maxNewTokens', 1);
  if (bad) return bad;
  const at = r.arrival;
  if (typeof at !== 'number' || !(at >= 0 && at <= MAX_TIME)) return `arrival must be a time in [0, ${MAX_TIME_TEXT}] s, got ${show(at)}`;
  for (const name of ['ttftSlo', 'tpotSlo']) {
    const v = r[name];
    if (v !== undefined && !(typeof v === 'number' && v > 0)) return `${name} must be a positive number of seconds (or left out), got ${show(v)}`;
  }
  if (r.promptTokens !== undefined && !(r.promptTokens instanceof Int32Array && r.promptTokens.length === r.promptLen))
    return `promptTokens must be an Int32Array of promptLen = ${r.promptLen} token ids, got ${show(r.promptTokens)}`;
  const p = r.prefix;
  if (p !== undefined) {
    if (typeof p !== 'object' || p === null) return `prefix must be an object, got ${show(p)}`;
    const { chunkTokens, chunkHashes, storedChunks } = p as Record<string, unknown>;
    if (!Number.isSafeInteger(chunkTokens) || (chunkTokens as number) < 1) return `prefix.chunkTokens must be a positive integer, got ${show(chunkTokens)}`;
    if (!Array.isArray(chunkHashes)) return `prefix.chunkHashes must be an array of strings, got ${show(chunkHashes)}`;
    const i = chunkHashes.findIndex((h) => typeof h !== 'string');
    if (i >= 0) return `prefix.chunkHashes[${i}] must be a string, got ${show(chunkHashes[i])}`;
    if (!Number.isSafeInteger(storedChunks) || (storedChunks as number) < 0 || (storedChunks as number) > chunkHashes.length)
      return `prefix.storedChunks must be an integer in [0, ${chunkHashes.length}] (chunkHashes), got ${show(storedChunks)}`;
  }
  return null;
}
