// Requests for a serving benchmark, as token ids: synthetic streams (Poisson or gamma
// arrivals, fixed or ranged lengths, shared-prefix groups) and trace replay (Azure CSV,
// Mooncake JSONL), from the same generators the simulator uses (lib/workload).
//
// Prompts are sent as token ids, so a prompt has exactly the length asked for on any
// server (text would be re-tokenized into a different length). Tokens come from the
// workload's chained chunk hashes: chunk i of every prompt with chunk hash h is the same
// seeded draw from h, so prompts that share chunks in the workload (a synthetic group's
// prefix, a Mooncake hash_id run) share exactly those tokens on the wire, and a server's
// prefix cache sees the sharing the trace describes.
import { createHash } from 'node:crypto';
import type { Request } from '../contract/request.js';
import { readAzureTrace, readMooncakeTrace } from '../workload/traces.js';
import { mulberry32 } from '../workload/rng.js';
import { synthetic } from '../workload/synthetic.js';

export interface BenchRequest {
  id: string;
  /** Seconds after the start of the run. */
  arrival: number;
  prompt: number[];
  outputLen: number;
  ttftSlo?: number;
  tpotSlo?: number;
}

export type WorkloadSpec =
  | {
      kind: 'synthetic';
      n: number;
      /** Requests per second; Infinity sends everything at once. */
      rate: number;
      arrival?: 'poisson' | 'gamma';
      cv?: number;
      inputLen: number | [number, number];
      outputLen: number | [number, number];
      /** Shared-prefix groups: each request starts with its group's sharedTokens tokens. */
      sharedPrefix?: { groups: number; tokens: number };
      seed?: number;
    }
  | {
      kind: 'azure' | 'mooncake';
      path: string;
      limit?: number;
      /** Multiplies the trace's arrival times (0.5: twice the rate). */
      timeScale?: number;
      /** Caps every prompt and output at these lengths (a small model's context). */
      maxInputLen?: number;
      maxOutputLen?: number;
      seed?: number;
    };

export interface TokenRange {
  lo: number;
  hi: number;
}

/** Tokens a shared chunk of the prefix hashes into; the tail past the last full chunk is per request. */
const PREFIX_CHUNK = 16;

function seedOf(s: string): number {
  return createHash('sha256').update(s).digest().readUInt32LE(0);
}

function draw(seed: number, n: number, range: TokenRange, out: number[]): void {
  const rand = mulberry32(seed);
  const span = range.hi - range.lo;
  for (let i = 0; i < n; i++) out.push(range.lo + Math.floor(rand() * span));
}

/** Token ids for a request: one seeded draw per chunk hash, then a draw of its own for the rest. */
function tokensFor(r: Request, range: TokenRange, salt: string): number[] {
  const out: number[] = [];
  const px = r.prefix;
  if (px) for (const h of px.chunkHashes) draw(seedOf(`${salt}/${h}`), px.chunkTokens, range, out);
  if (out.length > r.promptLen) out.length = r.promptLen;
  draw(seedOf(`${salt}/${r.id}/tail`), r.promptLen - out.length, range, out);
  return out;
}

export function buildWorkload(spec: WorkloadSpec, range: TokenRange, slos: { ttftSlo?: number; tpotSlo?: number } = {}): BenchRequest[] {
  if (!(Number.isInteger(range.lo) && Number.isInteger(range.hi) && range.lo >= 0 && range.hi > range.lo)) {
    throw new RangeError(`buildWorkload: token range must be integers 0 <= lo < hi, got [${range.lo}, ${range.hi})`);
  }
  let reqs: Request[];
  const salt = `kvcake-bench/${spec.seed ?? 0}`;
  if (spec.kind === 'synthetic') {
    const minLen = typeof spec.inputLen === 'number' ? spec.inputLen : spec.inputLen[0];
    const px = spec.sharedPrefix;
    if (px && !(Number.isInteger(px.tokens) && px.tokens >= 0 && px.tokens <= minLen)) {
      throw new RangeError(`buildWorkload: shared prefix tokens must be an integer in [0, the shortest input ${minLen}], got ${px.tokens}`);
    }
    const rate = spec.rate;
    if (!(rate > 0)) throw new RangeError(`buildWorkload: rate must be > 0 (or Infinity), got ${rate}`);
    reqs = synthetic({
      n: spec.n,
      // synthetic() wants a finite rate; Infinity sends everything at t = 0 below.
      rate: Number.isFinite(rate) ? rate : 1,
      arrival: spec.arrival,
      cv: spec.cv,
      promptLen: spec.inputLen,
      outputLen: spec.outputLen,
      seed: spec.seed,
      ...(px && px.tokens > 0 ? { prefix: { groups: px.groups, sharedTokens: px.tokens, chunkTokens: Math.min(PREFIX_CHUNK, px.tokens) } } : {}),
    });
    if (!Number.isFinite(rate)) for (const r of reqs) r.arrival = 0;
  } else {
    const opts = { limit: spec.limit, timeScale: spec.timeScale };
    reqs = spec.kind === 'azure' ? readAzureTrace(spec.path, opts) : readMooncakeTrace(spec.path, opts);
    for (const r of reqs) {
      if (spec.maxInputLen !== undefined && r.promptLen > spec.maxInputLen) r.promptLen = spec.maxInputLen;
      if (spec.maxOutputLen !== undefined && r.maxNewTokens > spec.maxOutputLen) r.maxNewTokens = spec.maxOutputLen;
    }
  }
  return reqs.map((r) => ({
    id: r.id,
    arrival: r.arrival,
    prompt: tokensFor(r, range, salt),
    outputLen: r.maxNewTokens,
    ...(slos.ttftSlo !== undefined ? { ttftSlo: slos.ttftSlo } : {}),
    ...(slos.tpotSlo !== undefined ? { tpotSlo: slos.tpotSlo } : {}),
  }));
}
