// Synthetic workloads: seeded arrivals (Poisson, or gamma for burstier or smoother traffic
// at the same rate), fixed or uniformly ranged lengths, and optional shared-prefix groups
// (a system prompt or a document many requests start with) for prefix-store experiments.
import type { Request } from '../contract/request.js';
import { exponential, gamma, mulberry32, uniformInt } from './rng.js';
import { chainHashes, DEFAULT_FINGERPRINT } from './hash.js';

export interface SyntheticSpec {
  /** Number of requests. */
  n: number;
  /** Mean arrival rate, requests per second. */
  rate: number;
  /** Inter-arrival distribution; 'poisson' (exponential gaps) by default. */
  arrival?: 'poisson' | 'gamma';
  /** Coefficient of variation of gamma gaps (1 = Poisson, > 1 burstier); default 1. */
  cv?: number;
  /** Prompt tokens: a fixed length, or [min, max] uniform (inclusive). */
  promptLen: number | [number, number];
  /** Output tokens (maxNewTokens): fixed, or [min, max] uniform (inclusive). */
  outputLen: number | [number, number];
  ttftSlo?: number;
  tpotSlo?: number;
  /** Shared-prefix groups: each request joins one group (uniformly at random) and its
   *  first sharedTokens tokens equal the group's; chunk hashes agree on those chunks. */
  prefix?: { groups: number; sharedTokens: number; chunkTokens: number };
  /** RNG seed; default 0. */
  seed?: number;
  /** Model fingerprint chained into chunk hashes. */
  fingerprint?: string;
}

type Range = [number, number];

function lengthRange(field: string, v: number | [number, number]): Range {
  const r: Range = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? [v[0], v[1]] : [NaN, NaN];
  if (!(Number.isInteger(r[0]) && r[0] >= 1)) throw new Error(`synthetic: ${field} must be an integer >= 1 (or [min, max] of such), got ${JSON.stringify(v)}`);
  if (!(Number.isInteger(r[1]) && r[1] >= r[0])) throw new Error(`synthetic: ${field} max must be an integer >= min ${r[0]}, got ${JSON.stringify(v)}`);
  return r;
}

function optionalPositive(field: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`synthetic: ${field} must be > 0, got ${v}`);
}

export function synthetic(spec: SyntheticSpec): Request[] {
  const { n, rate } = spec;
  if (!(Number.isInteger(n) && n >= 0)) throw new Error(`synthetic: n must be an integer >= 0, got ${n}`);
  if (!(Number.isFinite(rate) && rate > 0)) throw new Error(`synthetic: rate must be > 0, got ${rate}`);
  const arrival = spec.arrival ?? 'poisson';
  if (arrival !== 'poisson' && arrival !== 'gamma') throw new Error(`synthetic: arrival must be 'poisson' or 'gamma', got ${String(arrival)}`);
  const cv = spec.cv ?? 1;
  if (!(Number.isFinite(cv) && cv > 0)) throw new Error(`synthetic: cv must be > 0, got ${cv}`);
  if (spec.cv !== undefined && arrival !== 'gamma') throw new Error(`synthetic: cv applies only to arrival 'gamma', got arrival '${arrival}'`);
  const prompt = lengthRange('promptLen', spec.promptLen);
  const output = lengthRange('outputLen', spec.outputLen);
  optionalPositive('ttftSlo', spec.ttftSlo);
  optionalPositive('tpotSlo', spec.tpotSlo);
  const seed = spec.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`synthetic: seed must be an integer, got ${seed}`);
  const fingerprint = spec.fingerprint ?? DEFAULT_FINGERPRINT;
  const px = spec.prefix;
  if (px) {
    if (!(Number.isInteger(px.groups) && px.groups >= 1)) throw new Error(`synthetic: prefix.groups must be an integer >= 1, got ${px.groups}`);
    if (!(Number.isInteger(px.chunkTokens) && px.chunkTokens >= 1)) throw new Error(`synthetic: prefix.chunkTokens must be an integer >= 1, got ${px.chunkTokens}`);
    if (!(Number.isInteger(px.sharedTokens) && px.sharedTokens >= 0 && px.sharedTokens <= prompt[0])) {
      throw new Error(`synthetic: prefix.sharedTokens must be an integer in [0, min promptLen ${prompt[0]}], got ${px.sharedTokens}`);
    }
  }

  const rand = mulberry32(seed);
  const meanGap = 1 / rate;
  // Gamma with shape k and scale theta has mean k*theta and cv 1/sqrt(k).
  const shape = 1 / (cv * cv);
  const scale = meanGap / shape;
  const reqs: Request[] = new Array(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0) t += arrival === 'poisson' ? exponential(rand, meanGap) : gamma(rand, shape, scale);
    const promptLen = uniformInt(rand, prompt[0], prompt[1]);
    const maxNewTokens = uniformInt(rand, output[0], output[1]);
    const id = `r${i}`;
    const req: Request = { id, arrival: t, promptLen, maxNewTokens };
    if (spec.ttftSlo !== undefined) req.ttftSlo = spec.ttftSlo;
    if (spec.tpotSlo !== undefined) req.tpotSlo = spec.tpotSlo;
    if (px) {
      const group = uniformInt(rand, 0, px.groups - 1);
      const full = Math.floor(promptLen / px.chunkTokens);
      const sharedChunks = Math.floor(px.sharedTokens / px.chunkTokens);
      // Only chunks wholly inside the shared region are shared; the seed keeps two
      // workloads from sharing chunks by accident.
      const ids: string[] = new Array(full);
      for (let c = 0; c < full; c++) ids[c] = c < sharedChunks ? `s${seed}/g${group}/${c}` : `s${seed}/${id}/${c}`;
      req.prefix = { chunkTokens: px.chunkTokens, chunkHashes: chainHashes(ids, fingerprint), storedChunks: 0 };
    }
    reqs[i] = req;
  }
  return reqs;
}
