// The engine: continuous batching of live requests on a model and real KV pools. One step
// loop (lib/loop) runs in the background from creation to close: the scheduler plans, the
// EngineExecutor runs the plan on the native ops, and the scheduler's events become each
// request's token stream. With a prefix store, each request is looked up before it joins
// the loop (lib/engine/prefix.ts), and the executor moves chunks between the store and the
// pools.
import { createBackend, type Backend, type KVPool } from '../backend.js';
import type { DType } from '../backend/dtype.js';
import type { CostModel } from '../cost/cost-model.js';
import type { SeqEvent } from '../contract/events.js';
import type { Request } from '../contract/request.js';
import { runSteps } from '../loop/step-loop.js';
import { loadModel, type Model } from '../model/model.js';
import { resolveSampling } from '../model/sampling.js';
import { Tokenizer } from '../model/tokenizer.js';
import type { ModelConfig } from '../model/config.js';
import { createScheduler, POLICIES, type PolicyName } from '../sched/index.js';
import type { Scheduler } from '../sched/scheduler.js';
import type { PrefixStore } from '../store/store.js';
import { engineCost } from './cost.js';
import { attachStore, engineFingerprint, lookupPrefix, modelIdOfDir, modelIdOfDummy } from './prefix.js';
import { EngineExecutor, type SeqInfo } from './executor.js';
import { GenerationState, LiveArrivals } from './generation.js';
import { EngineBusyError, EngineClosedError, type Engine, type EngineOptions, type EngineStats, type FinishReason, type GenerateOptions, type Generation, type GenerationResult, type StepReport, type TokenChunk } from './types.js';

function positiveInt(name: string, v: unknown, d: number, max = 2 ** 31 - 1): number {
  const x = v ?? d;
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1 || x > max) throw new RangeError(`createEngine: ${name} must be an integer in [1, ${max}], got ${String(x)}`);
  return x;
}

function bytesOpt(name: string, v: unknown, d: number | undefined): number {
  const x = v ?? d;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) throw new RangeError(`createEngine: ${name} must be a finite number of bytes >= 0, got ${String(x)}`);
  return x;
}

const SUPPORTED_BLOCK_SIZES = [8, 16, 32, 64, 128, 256];

class EngineImpl implements Engine {
  readonly modelName: string;
  readonly backend: 'cpu' | 'cuda';
  readonly policy: PolicyName;
  readonly tokenizer: Tokenizer | null;
  readonly config: ModelConfig;
  private readonly be: Backend;
  private readonly model: Model;
  private readonly pools: { device: KVPool; host: KVPool };
  private readonly scheduler: Scheduler;
  private readonly executor: EngineExecutor;
  private readonly arrivals = new LiveArrivals();
  /** Requests waiting for their prefix lookup: cancelled ones end when it returns. */
  private readonly lookingUp = new Map<string, { cancelled: boolean }>();
  private readonly store: PrefixStore | null;
  private readonly ownsStore: boolean;
  private readonly gens = new Map<string, GenerationState>();
  private readonly infos = new Map<string, SeqInfo>();
  private readonly t0 = performance.now();
  private readonly stop = new AbortController();
  private readonly loop: Promise<void>;
  private loopError: Error | null = null;
  private closed = false;
  private nextId = 0;
  private steps = 0;
  private stepEwma = 0;
  /** Engine clock at the end of the last step with compute (0: the engine's creation). */
  private lastComputeEnd = 0;
  private issueEwma = 0;
  private readonly maxWaiting: number;
  private readonly opts: EngineOptions;
  private readonly cost: CostModel;
  private lookupErrors = 0;
  /** The start-up request is running: its steps are not reported. */
  private warming = false;
  private readonly totals = { requests: 0, finished: 0, aborted: 0, rejected: 0, promptTokens: 0, cachedTokens: 0, generatedTokens: 0, preemptions: 0, offloadedBytes: 0, loadedBytes: 0, savedBytes: 0 };

  constructor(o: { opts: EngineOptions; be: Backend; model: Model; tokenizer: Tokenizer | null; pools: { device: KVPool; host: KVPool }; hostBlocks: number; cost: CostModel; policy: PolicyName; maxWaiting: number; store: { store: PrefixStore; owned: boolean } | null }) {
    this.opts = o.opts;
    this.store = o.store?.store ?? null;
    this.ownsStore = o.store?.owned ?? false;
    this.cost = o.cost;
    this.be = o.be;
    this.backend = o.be.name;
    this.model = o.model;
    this.pools = o.pools;
    this.policy = o.policy;
    this.maxWaiting = o.maxWaiting;
    this.tokenizer = o.tokenizer ?? o.model.tokenizer;
    this.config = o.model.config;
    this.modelName = typeof o.opts.model === 'string' ? o.opts.model : `dummy ${o.model.config.architecture} ${o.model.config.numLayers}x${o.model.config.hiddenSize}`;
    const blockSize = o.pools.device.layout.blockSize;
    const store = this.store;
    // Cake's split uses the store's measured read bandwidth; before the first load, its cap
    // (a store emulating slower storage), else the cost model's storage channel.
    const storageBandwidth = store ? () => store.readBandwidth() ?? (store.stats().readCap || o.cost.channel('storage').bandwidth) : undefined;
    this.scheduler = createScheduler({
      policy: o.policy,
      cost: o.cost,
      blockSize,
      deviceBlocks: o.pools.device.numBlocks,
      hostBlocks: o.hostBlocks,
      maxBatchedTokens: o.opts.maxBatchedTokens ?? 2048,
      maxRunning: o.opts.maxRunning ?? 256,
      preemption: o.opts.preemption ?? 'recompute',
      savePrefixes: store !== null,
      storageBandwidth,
      fixedSplit: o.opts.cakeSplit,
    });
    this.executor = new EngineExecutor(o.model, o.pools, (seq) => this.infos.get(seq), () => this.now(), store);
    this.loop = runSteps({
      scheduler: this.scheduler,
      executor: this.executor,
      arrivals: this.arrivals,
      signal: this.stop.signal,
      maxSteps: Number.MAX_SAFE_INTEGER,
      onStep: (plan, result, events) => {
        this.steps++;
        const secs = result.end - result.start;
        const idleSeconds = result.start - this.lastComputeEnd;
        if (plan.compute.length > 0) {
          this.lastComputeEnd = result.end;
          this.stepEwma = this.stepEwma === 0 ? secs : 0.9 * this.stepEwma + 0.1 * secs;
          this.issueEwma = this.issueEwma === 0 ? this.executor.lastIssueSeconds : 0.9 * this.issueEwma + 0.1 * this.executor.lastIssueSeconds;
        }
        this.dispatch(events);
        if (this.opts.onStep && plan.compute.length > 0 && !this.warming) {
          let prefill = 0;
          let decode = 0;
          for (const c of plan.compute) if (c.phase === 'decode') decode += c.tokens;
          else prefill += c.tokens;
          const copyBytes = { h2d: 0, d2h: 0 };
          for (const t of plan.transfers) if (t.channel !== 'storage') copyBytes[t.channel] += t.bytes;
          const items = plan.compute.map((c) => ({ phase: c.phase, tokens: c.tokens, cachedBefore: c.cachedBefore }));
          const report: StepReport = { step: plan.step, startedAt: result.start, seconds: secs, predictedSeconds: this.cost.stepTime(plan.compute), issueSeconds: this.executor.lastIssueSeconds, prefillTokens: prefill, decodeTokens: decode, transfers: plan.transfers.length, items, copyBytes, idleSeconds, stats: this.stats() };
          this.opts.onStep(report);
        }
      },
    }).then(
      () => undefined,
      (err: Error) => {
        this.loopError = err;
        for (const g of this.gens.values()) g.fail(new Error(`kvcake engine stopped: ${err.message}`));
        this.gens.clear();
      },
    );
  }

  private now(): number {
    return (performance.now() - this.t0) / 1000;
  }

  generate(prompt: string | readonly number[] | Int32Array, opts: GenerateOptions = {}): Generation {
    if (this.closed) throw new EngineClosedError('generate: the engine is closed');
    if (this.loopError) throw new Error(`generate: the engine stopped: ${this.loopError.message}`);
    if (typeof opts !== 'object' || opts === null) throw new TypeError('generate: options must be an object');
    const c = this.model.config;
    let ids: Int32Array;
    if (typeof prompt === 'string') {
      if (!this.tokenizer) throw new TypeError('generate: this model has no tokenizer; pass token ids');
      ids = Int32Array.from(this.tokenizer.encode(prompt));
    } else if (prompt instanceof Int32Array || Array.isArray(prompt)) {
      ids = Int32Array.from(prompt as ArrayLike<number>);
      for (let i = 0; i < ids.length; i++) {
        const v = (prompt as ArrayLike<number>)[i];
        if (!Number.isInteger(v) || v < 0 || v >= c.vocabSize) throw new RangeError(`generate: prompt[${i}] = ${v} is not a token id in [0, ${c.vocabSize})`);
      }
    } else {
      throw new TypeError('generate: prompt must be a string or an array of token ids');
    }
    if (ids.length === 0) throw new RangeError('generate: the prompt is empty');
    const maxTokens = opts.maxTokens ?? 256;
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new RangeError(`generate: maxTokens must be an integer >= 1, got ${maxTokens}`);
    if (ids.length + maxTokens > c.maxContextLen) throw new RangeError(`generate: prompt (${ids.length}) + maxTokens (${maxTokens}) = ${ids.length + maxTokens} exceeds the model's context of ${c.maxContextLen} tokens`);
    const sampling = resolveSampling({ temperature: opts.temperature, topK: opts.topK, topP: opts.topP, seed: opts.seed }, 'generate');
    const stopIds = new Set<number>(opts.ignoreEos ? [] : c.eosTokenIds);
    const stopStrings: string[] = [];
    for (const [i, s] of (opts.stop ?? []).entries()) {
      if (typeof s === 'number') {
        if (!Number.isInteger(s) || s < 0 || s >= c.vocabSize) throw new RangeError(`generate: stop[${i}] = ${s} is not a token id in [0, ${c.vocabSize})`);
        stopIds.add(s);
      } else if (typeof s === 'string' && s.length > 0) {
        if (!this.tokenizer) throw new TypeError(`generate: stop[${i}] is a string, and this model has no tokenizer to decode text`);
        stopStrings.push(s);
      } else {
        throw new TypeError(`generate: stop[${i}] must be a non-empty string or a token id`);
      }
    }
    for (const k of ['ttftSlo', 'tpotSlo'] as const) {
      const v = opts[k];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new RangeError(`generate: ${k} must be a finite number of seconds > 0, got ${v}`);
    }
    if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw new TypeError('generate: signal must be an AbortSignal');
    const id = opts.requestId ?? `req-${this.nextId++}`;
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('generate: requestId must be a non-empty string');
    if (this.gens.has(id)) throw new RangeError(`generate: requestId ${id} is already in use`);
    // Requests the loop has not taken yet are waiting too: a burst between two steps counts.
    const waiting = this.waiting;
    if (waiting >= this.maxWaiting) throw new EngineBusyError(`generate: ${waiting} requests are waiting, the limit (maxWaiting) is ${this.maxWaiting}`);
    if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('generate: aborted before it started');
    const now = this.now();
    const g = new GenerationState(id, ids.length, now, this.tokenizer?.createStream({ promptIds: ids }) ?? null, stopStrings, () => this.cancel(id));
    this.gens.set(id, g);
    this.infos.set(id, { promptLen: ids.length, sampling });
    this.totals.requests++;
    this.totals.promptTokens += ids.length;
    const req: Request = {
      id,
      arrival: now,
      promptLen: ids.length,
      promptTokens: ids,
      maxNewTokens: maxTokens,
      stopTokenIds: [...stopIds],
      sampling,
      ttftSlo: opts.ttftSlo ?? this.opts.ttftSlo,
      tpotSlo: opts.tpotSlo ?? this.opts.tpotSlo,
    };
    opts.signal?.addEventListener('abort', () => this.cancel(id), { once: true });
    if (this.store) this.lookUp(req, g);
    else this.arrivals.push(req);
    return g;
  }

  private get waiting(): number {
    return this.scheduler.numWaiting + this.arrivals.pending + this.lookingUp.size;
  }

  /** Asks the store for the request's stored prefix, then hands it to the loop. */
  private lookUp(req: Request, g: GenerationState): void {
    const mark = { cancelled: false };
    this.lookingUp.set(req.id, mark);
    lookupPrefix(this.store!, req.promptTokens!).then(
      ({ prefix, error }) => {
        this.lookingUp.delete(req.id);
        if (error) this.lookupErrors++;
        if (mark.cancelled || this.closed) {
          this.gens.delete(req.id);
          this.infos.delete(req.id);
          this.totals.aborted++;
          g.finish(this.resultOf(g, 'abort'));
          return;
        }
        if (prefix) req.prefix = prefix;
        this.arrivals.push(req);
      },
      (err: Error) => {
        this.lookingUp.delete(req.id);
        this.gens.delete(req.id);
        this.infos.delete(req.id);
        g.fail(err);
      },
    );
  }

  /** Cancels a request from the caller's side (signal, early return of the iterator). */
  private cancel(id: string): void {
    const g = this.gens.get(id);
    if (!g) return;
    const lookup = this.lookingUp.get(id);
    if (lookup) {
      lookup.cancelled = true;
      return;
    }
    // Not taken by the loop yet: the scheduler never sees it.
    if (this.arrivals.remove(id)) {
      this.gens.delete(id);
      this.infos.delete(id);
      this.totals.aborted++;
      g.finish(this.resultOf(g, 'abort'));
      return;
    }
    this.scheduler.abort(id, 'aborted by the caller');
    this.arrivals.poke();
  }

  private dispatch(events: readonly SeqEvent[]): void {
    for (const e of events) {
      const g = this.gens.get(e.seq);
      if (!g) continue;
      switch (e.kind) {
        case 'first-token':
        case 'token': {
          if (g.stoppedByString) break;
          const token = e.token!;
          g.tokenIds.push(token);
          this.totals.generatedTokens++;
          if (Number.isNaN(g.firstAt)) {
            g.firstAt = e.at;
            g.cachedTokens = e.cachedTokens ?? 0;
            this.totals.cachedTokens += g.cachedTokens;
          }
          g.lastAt = e.at;
          if (g.pushToken(token)) {
            this.scheduler.abort(e.seq, 'stop string');
            this.arrivals.poke();
          }
          break;
        }
        case 'preempted':
          g.preemptions++;
          this.totals.preemptions++;
          break;
        case 'finished':
          this.end(g, e.finishReason ?? 'length');
          break;
        case 'aborted':
          this.end(g, g.stoppedByString ? 'stop' : 'abort');
          break;
        case 'rejected':
          this.gens.delete(e.seq);
          this.infos.delete(e.seq);
          this.totals.rejected++;
          g.fail(new RangeError(`generate: request rejected: ${e.reason}`));
          break;
      }
    }
  }

  private end(g: GenerationState, reason: FinishReason): void {
    if (g.held && !g.stoppedByString) {
      g.text += g.held;
      g.push({ tokenId: -1, text: g.held });
      g.held = '';
    }
    if (g.detok && reason !== 'stop') {
      const tail = g.detok.flush();
      if (tail) {
        g.text += tail;
        g.push({ tokenId: -1, text: tail });
      }
    }
    this.gens.delete(g.requestId);
    this.infos.delete(g.requestId);
    if (reason === 'abort') this.totals.aborted++;
    else this.totals.finished++;
    g.finish(this.resultOf(g, reason));
  }

  private resultOf(g: GenerationState, reason: FinishReason): GenerationResult {
    const tr = this.executor.trafficOf(g.requestId);
    this.totals.offloadedBytes += tr.offloadedBytes;
    this.totals.loadedBytes += tr.loadedBytes;
    const n = g.tokenIds.length;
    const end = Number.isNaN(g.lastAt) ? this.now() : g.lastAt;
    return {
      text: g.text,
      tokenIds: [...g.tokenIds],
      stats: {
        requestId: g.requestId,
        finishReason: reason,
        promptTokens: g.promptTokens,
        cachedTokens: g.cachedTokens,
        generatedTokens: n,
        ttft: Number.isNaN(g.firstAt) ? NaN : g.firstAt - g.startedAt,
        tpot: n > 1 ? (g.lastAt - g.firstAt) / (n - 1) : NaN,
        e2e: end - g.startedAt,
        offloadedBytes: tr.offloadedBytes,
        loadedBytes: tr.loadedBytes,
        preemptions: g.preemptions,
      },
    };
  }

  stats(): EngineStats {
    const kv = this.scheduler.kv;
    const bb = this.pools.device.blockBytes;
    return {
      backend: this.backend,
      policy: this.policy,
      waiting: this.waiting,
      running: this.scheduler.numRunning,
      transfersInFlight: this.scheduler.transfersInFlight,
      kv: {
        device: { usedBlocks: kv.device.numUsed, totalBlocks: kv.device.numBlocks, bytes: kv.device.numBlocks * bb },
        host: { usedBlocks: kv.host.numUsed, totalBlocks: kv.host.numBlocks, bytes: kv.host.numBlocks * bb },
      },
      steps: this.steps,
      stepSeconds: this.stepEwma,
      issueSeconds: this.issueEwma,
      totals: { ...this.totals, savedBytes: this.scheduler.stats.savedBytes },
      prefixStore: this.store ? { ...this.executor.storeTraffic, lookupErrors: this.lookupErrors, store: this.store.stats() } : undefined,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return this.loop;
    this.closed = true;
    for (const id of [...this.gens.keys()]) this.cancel(id);
    // Let the loop deliver the aborts and drain transfers, then stop it.
    const deadline = Date.now() + 30_000;
    while ((this.scheduler.hasWork() || this.gens.size > 0) && !this.loopError && Date.now() < deadline) {
      this.arrivals.poke();
      await new Promise((r) => setTimeout(r, 5));
    }
    this.arrivals.open = false;
    this.stop.abort();
    this.arrivals.poke();
    await this.loop;
    if (this.ownsStore) await this.store!.close();
    this.pools.device.release();
    this.pools.host.release();
    this.model.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** One short request before the engine is handed out, so the first caller's steps do not
   *  pay for first-touch page faults and the kernels' first runs; then the counters start
   *  from zero. Its prompt is shorter than a chunk, so the prefix store is not involved. */
  async warmUp(): Promise<void> {
    const c = this.model.config;
    const perLayer = Math.floor(this.pools.device.numBlocks / c.numLayers) * this.pools.device.layout.blockSize;
    const n = Math.min(this.opts.maxBatchedTokens ?? 2048, 64, c.maxContextLen - 2, (this.store?.chunkTokens ?? Infinity) - 1, perLayer - 2);
    if (n < 1) return;
    this.warming = true;
    try {
      await this.generate(Int32Array.from({ length: n }, (_, i) => i % c.vocabSize), { maxTokens: 2, ignoreEos: true, requestId: 'kvcake-warm-up' }).result;
    } catch (err) {
      // A pool too small for even this request rejects it; the engine still serves what fits.
      if (!(err instanceof RangeError)) throw err;
    } finally {
      this.warming = false;
    }
    for (const k of Object.keys(this.totals) as (keyof typeof this.totals)[]) this.totals[k] = 0;
    this.steps = 0;
    this.stepEwma = 0;
    this.issueEwma = 0;
  }

  /** @internal Live bytes per tier, for tests that everything was freed. */
  liveBytes(): { device: number; host: number } {
    return { device: this.be.liveBytes('device'), host: this.be.liveBytes('host') };
  }
}

/** Loads the model, sizes the KV pools and starts the step loop. */
export async function createEngine(opts: EngineOptions): Promise<Engine> {
  if (!opts || typeof opts !== 'object') throw new TypeError('createEngine: options object required');
  if (opts.backend !== 'cpu' && opts.backend !== 'cuda') throw new RangeError(`createEngine: backend must be 'cpu' or 'cuda', got ${JSON.stringify(opts.backend)}`);
  const policy = opts.policy ?? 'baseline';
  if (!POLICIES.includes(policy)) throw new RangeError(`createEngine: policy must be one of ${POLICIES.join(', ')}, got ${String(policy)}`);
  const blockSize = positiveInt('blockSize', opts.blockSize, 16, 256);
  if (!SUPPORTED_BLOCK_SIZES.includes(blockSize)) throw new RangeError(`createEngine: blockSize must be one of ${SUPPORTED_BLOCK_SIZES.join(', ')}, got ${blockSize}`);
  positiveInt('maxBatchedTokens', opts.maxBatchedTokens, 2048, 1 << 20);
  positiveInt('maxRunning', opts.maxRunning, 256, 65536);
  const maxWaiting = opts.maxWaiting === undefined ? Infinity : positiveInt('maxWaiting', opts.maxWaiting, 1);
  const deviceKvBytes = bytesOpt('deviceKvBytes', opts.deviceKvBytes, undefined);
  const hostKvBytes = bytesOpt('hostKvBytes', opts.hostKvBytes, 0);
  if (opts.dtype !== undefined && !['fp32', 'fp16', 'bf16'].includes(opts.dtype)) throw new RangeError(`createEngine: dtype must be 'fp32', 'fp16' or 'bf16', got ${JSON.stringify(opts.dtype)}`);
  const be = createBackend({ backend: opts.backend });
  const src = typeof opts.model === 'string' ? { backend: be, dir: opts.model } : { backend: be, config: opts.model.config, dummySeed: opts.model.dummySeed ?? 0 };
  // A dummy model's tokenizer comes from its own directory (the weights are made up, the
  // tokenizer is real); dummy weights sample every id, so the tokenizer must cover them all.
  const tokenizerDir = typeof opts.model === 'string' ? undefined : opts.model.tokenizerDir;
  const tokenizer = tokenizerDir === undefined ? null : await Tokenizer.fromDir(tokenizerDir);
  const model = await loadModel(src, { dtype: opts.dtype ?? (typeof opts.model === 'string' ? undefined : 'fp32') });
  if (tokenizer && tokenizer.vocabSize < model.config.vocabSize) {
    model.release();
    throw new RangeError(`createEngine: the tokenizer in ${tokenizerDir} has ${tokenizer.vocabSize} tokens, fewer than the config's vocab_size ${model.config.vocabSize}; dummy weights would sample ids it cannot decode`);
  }
  let pools: { device: KVPool; host: KVPool } | null = null;
  let store: { store: PrefixStore; owned: boolean } | null = null;
  let engine: EngineImpl;
  try {
    const c = model.config;
    const kvDtype: DType = model.dtype;
    const layout = { numKvHeads: c.numKvHeads, headDim: c.headDim, blockSize, dtype: kvDtype };
    const blockBytes = 2 * c.numKvHeads * c.headDim * blockSize * (kvDtype === 'fp32' ? 4 : 2);
    const deviceBlocks = Math.floor(deviceKvBytes / blockBytes);
    if (deviceBlocks < c.numLayers) {
      throw new RangeError(`createEngine: deviceKvBytes = ${deviceKvBytes} holds ${deviceBlocks} blocks of ${blockBytes} bytes; the model needs at least one block per layer (${c.numLayers} blocks, ${c.numLayers * blockBytes} bytes)`);
    }
    const hostBlocks = Math.floor(hostKvBytes / blockBytes);
    pools = {
      device: be.createPool({ tier: 'device', numBlocks: deviceBlocks, ...layout }),
      host: be.createPool({ tier: 'host', numBlocks: Math.max(1, hostBlocks), ...layout }),
    };
    const cost = opts.cost ?? engineCost(model, { deviceKvBytes: deviceBlocks * blockBytes });
    if (opts.cakeSplit !== undefined && !(Number.isInteger(opts.cakeSplit) && opts.cakeSplit >= 0)) throw new RangeError(`createEngine: cakeSplit must be an integer >= 0, got ${opts.cakeSplit}`);
    if (opts.store !== undefined) {
      if (opts.modelId !== undefined && (typeof opts.modelId !== 'string' || opts.modelId.length === 0)) throw new TypeError('createEngine: modelId must be a non-empty string');
      const modelId = opts.modelId ?? (typeof opts.model === 'string' ? await modelIdOfDir(opts.model) : modelIdOfDummy(model.config, opts.model.dummySeed ?? 0));
      store = await attachStore(opts.store, engineFingerprint(model, modelId), pools.device);
    }
    // A pool cannot be empty: with no host memory the host pool has one block the scheduler
    // never hands out.
    engine = new EngineImpl({ opts, be, model, tokenizer, pools, hostBlocks, cost, policy, maxWaiting, store });
  } catch (err) {
    if (store?.owned) await store.store.close();
    pools?.device.release();
    pools?.host.release();
    model.release();
    throw err;
  }
  if (opts.warmUp ?? true) {
    try {
      await engine.warmUp();
    } catch (err) {
      // close() releases the pools, the model and a store the engine opened.
      await engine.close();
      throw err;
    }
  }
  return engine;
}

export type { EngineImpl };
