// The engine's public shapes: what a Node app (and the HTTP server) sees. The engine runs the
// scheduler's plans on a model over real KV pools, one step at a time, and streams tokens.
import type { DType } from '../backend/dtype.js';
import type { CostItem } from '../cost/cost-model.js';
import type { ModelConfig } from '../model/config.js';
import type { PolicyName } from '../sched/index.js';
import type { PrefixStore, StoreStats } from '../store/store.js';
import type { EngineStoreOptions } from './prefix.js';

export type EngineModel =
  /** A Hugging Face model directory: config.json, safetensors, tokenizer.json. */
  | string
  /** A config (HF config.json contents or a parsed ModelConfig) with seeded dummy weights,
   *  and optionally a tokenizer directory. */
  | { config: ModelConfig | Record<string, unknown>; dummySeed?: number; tokenizerDir?: string };

export interface EngineOptions {
  model: EngineModel;
  /** The backend, always explicit: 'cpu' or 'cuda'. */
  backend: 'cpu' | 'cuda';
  /** Scheduling policy (default 'baseline'). LayerKV policies need host KV memory. */
  policy?: PolicyName;
  /** How a preempted request gives up its device blocks (default 'recompute'). */
  preemption?: 'recompute' | 'swap';
  /** Weights and KV dtype (default: the checkpoint's; fp32 for dummy models). */
  dtype?: DType;
  /** Bytes of the device KV pool. */
  deviceKvBytes: number;
  /** Bytes of the host KV pool (offloads, swaps, prefix landing). Default 0; LayerKV,
   *  swap preemption and prefix loads need it. */
  hostKvBytes?: number;
  /** Token budget per step (default 2048). */
  maxBatchedTokens?: number;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** Requests decoding at once at most (default 256). */
  maxRunning?: number;
  /** Requests waiting at most; generate() beyond it rejects with EngineBusyError (default
   *  unbounded). */
  maxWaiting?: number;
  /** Default SLOs for requests that give none (seconds). */
  ttftSlo?: number;
  tpotSlo?: number;
  /** The cost model the scheduler plans with (default: a roofline over this machine's
   *  measured FMA peak and copy bandwidth; see calibrateEngineCost for a fitted one). */
  cost?: import('../cost/cost-model.js').CostModel;
  /** Called after every step that computed something. */
  onStep?: (s: StepReport) => void;
  /**
   * The prefix KV store: a PrefixStore opened with this engine's fingerprint
   * (engineFingerprint) and block size, or options for one the engine opens and closes (the
   * local disk tier by default; chunkTokens 256). Every request then looks its prompt up on
   * arrival, and the full prompt chunks prefills compute are saved. The policies cake,
   * layerkv+cake and load-only load stored chunks (compute-only recomputes them); baseline
   * and layerkv only save. Loads need host KV memory (hostKvBytes) for landing blocks.
   */
  store?: PrefixStore | EngineStoreOptions;
  /** The model's identity in chunk keys and headers (default: derived from config.json, the
   *  safetensors headers and sampled weight bytes; see lib/engine/prefix.ts). Name the
   *  weights' revision here when several servers share a store. */
  modelId?: string;
  /** Run one short request before createEngine resolves, so the first real request does not
   *  pay for first-touch page faults and first kernel runs (default true). */
  warmUp?: boolean;
  /** Pins Cake's split at chunk k for every request (chunks [0, k) computed, the rest
   *  loaded). For tests and ablations; default: planned per step. */
  cakeSplit?: number;
}

export interface GenerateOptions {
  /** Output tokens at most (default 256). */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  /** Stop strings (matched on the decoded text; the output is cut before the match) and/or
   *  stop token ids. EOS ids of the model stop as well unless ignoreEos. */
  stop?: readonly (string | number)[];
  ignoreEos?: boolean;
  /** Cancels the request at any stage; its blocks are freed and the stream ends. */
  signal?: AbortSignal;
  ttftSlo?: number;
  tpotSlo?: number;
  /** A caller-chosen id (default: generated). */
  requestId?: string;
}

/** One streamed token. */
export interface TokenChunk {
  tokenId: number;
  /** Text this token completes (may be '' while a multi-byte character is incomplete). */
  text: string;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationStats {
  requestId: string;
  finishReason: FinishReason;
  promptTokens: number;
  /** Prompt tokens whose KV came from the prefix store instead of being computed. */
  cachedTokens: number;
  generatedTokens: number;
  /** Seconds from generate() to the first token, and mean seconds per later token. */
  ttft: number;
  tpot: number;
  e2e: number;
  /** The policy's actions for this request. */
  offloadedBytes: number;
  loadedBytes: number;
  preemptions: number;
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  stats: GenerationStats;
}

/** A running request: iterate for tokens; `result` settles when it ends. */
export interface Generation extends AsyncIterable<TokenChunk> {
  readonly requestId: string;
  readonly result: Promise<GenerationResult>;
}

export interface TierUsage {
  usedBlocks: number;
  totalBlocks: number;
  bytes: number;
}

export interface EngineStats {
  backend: 'cpu' | 'cuda';
  policy: PolicyName;
  waiting: number;
  running: number;
  /** Block copies in flight (an aborted request's blocks come back when its copies land). */
  transfersInFlight: number;
  kv: { device: TierUsage; host: TierUsage };
  steps: number;
  /** Mean wall seconds of recent steps, and of the host's part of issuing one. */
  stepSeconds: number;
  issueSeconds: number;
  /** Counters since start. */
  totals: {
    requests: number;
    finished: number;
    aborted: number;
    rejected: number;
    promptTokens: number;
    cachedTokens: number;
    generatedTokens: number;
    preemptions: number;
    offloadedBytes: number;
    loadedBytes: number;
    savedBytes: number;
  };
  /** The prefix store, when the engine has one: the engine's chunk loads and saves through
   *  it (a failed load's chunk was computed instead; a lookup that failed counts as a miss),
   *  and the store's own counters. */
  prefixStore?: { loads: number; loadFailures: number; saves: number; saveFailures: number; lookupErrors: number; store: StoreStats };
}

export interface StepReport {
  step: number;
  startedAt: number;
  seconds: number;
  /** What the scheduler's cost model predicted for this step's compute. */
  predictedSeconds: number;
  issueSeconds: number;
  prefillTokens: number;
  decodeTokens: number;
  transfers: number;
  /** The step's compute as the cost model sees it (one entry per sequence). */
  items: readonly CostItem[];
  /** Bytes of the step's copies between the tiers (h2d and d2h; store reads and writes not included). */
  copyBytes: { h2d: number; d2h: number };
  /** Seconds since the engine's previous step with compute ended (its start-up steps
   *  included), or since the engine was created: how long the cores had no forward pass. */
  idleSeconds: number;
  stats: EngineStats;
}

export interface Engine extends AsyncDisposable {
  readonly modelName: string;
  readonly backend: 'cpu' | 'cuda';
  readonly policy: PolicyName;
  /** Tokenizer of the model (null for a dummy model without one). */
  readonly tokenizer: import('../model/tokenizer.js').Tokenizer | null;
  /** The model's parsed config (context length, vocabulary, layers). */
  readonly config: ModelConfig;
  /** Starts a request from text (tokenized with the model's tokenizer) or token ids. */
  generate(prompt: string | readonly number[] | Int32Array, opts?: GenerateOptions): Generation;
  stats(): EngineStats;
  /** Stops taking requests, aborts those in flight, releases every pool and the model. */
  close(): Promise<void>;
}

/** generate() on a full queue (maxWaiting): retry later. */
export class EngineBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineBusyError';
  }
}

/** generate() after close(). */
export class EngineClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineClosedError';
  }
}
