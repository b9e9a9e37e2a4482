// The OpenAI-compatible API over an Engine, as a fastify plugin: /v1/completions,
// /v1/chat/completions (SSE streaming or one JSON body), /v1/models, /health, /metrics.
//
// Every generation request gets an AbortController: a client that goes away (the response
// closes before it finished) aborts its request in the engine, which frees its blocks; a
// shutdown drains (new requests get 503, running ones finish within a grace period) and
// then aborts what is left.
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { EngineBusyError, EngineClosedError, type Engine, type Generation, type GenerateOptions, type GenerationResult, type TokenChunk } from '../engine/types.js';
import { ApiError, invalid } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { createRequestParser, type ParsedRequest, type RequestParser } from './params.js';
import { SseWriter } from './sse.js';

export interface ServiceOptions {
  engine: Engine;
  /** The model id clients name (default: engine.modelName). */
  modelName?: string;
  /** Require `Authorization: Bearer <apiKey>` on /v1/* (default: none). */
  apiKey?: string | null;
  /** Largest request body in bytes; larger is a 413 (default 4 MiB). */
  maxBodyBytes?: number;
  /** Context length: prompt + max_tokens must fit (default and upper bound: the model's). */
  maxModelLen?: number;
  /** Longest prompt in tokens; longer is a 400 (default: maxModelLen - 1). */
  maxPromptTokens?: number;
  /** max_tokens of a chat request that gives none (default 512; completions default to 16 as OpenAI's do). */
  defaultMaxTokens?: number;
  /** Retry-After seconds on 429 (engine queue full) and 503 (shutting down); default 1. */
  retryAfterSeconds?: number;
  /** Also export Node process metrics (RSS, heap, event-loop lag) on /metrics. */
  processMetrics?: boolean;
}

const MiB = 1024 * 1024;

class ShutdownAbort extends Error {
  override name = 'ShutdownAbort';
}

interface InFlight {
  ac: AbortController;
  done: Promise<void>;
}

export class OpenAIService {
  readonly engine: Engine;
  readonly metrics: ServerMetrics;
  readonly modelName: string;
  readonly maxModelLen: number;
  readonly maxPromptTokens: number;
  private readonly parser: RequestParser;
  private readonly opts: Required<Pick<ServiceOptions, 'maxBodyBytes' | 'defaultMaxTokens' | 'retryAfterSeconds'>> & { apiKeyHash: Buffer | null };
  private readonly inFlight = new Set<InFlight>();
  private readonly created = Math.floor(Date.now() / 1000);
  private draining = false;

  constructor(o: ServiceOptions) {
    if (!o || typeof o !== 'object' || !o.engine) throw new TypeError('OpenAIService: options.engine is required');
    const posInt = (name: string, v: number | undefined, dflt: number) => {
      const x = v ?? dflt;
      if (!Number.isSafeInteger(x) || x < 1) throw new RangeError(`OpenAIService: ${name} must be a positive integer, got ${v}`);
      return x;
    };
    this.engine = o.engine;
    this.modelName = o.modelName ?? o.engine.modelName;
    const ctx = o.engine.config.maxContextLen;
    this.maxModelLen = posInt('maxModelLen', o.maxModelLen, ctx);
    if (this.maxModelLen > ctx) throw new RangeError(`OpenAIService: maxModelLen = ${this.maxModelLen} exceeds the model's context of ${ctx} tokens`);
    this.maxPromptTokens = posInt('maxPromptTokens', o.maxPromptTokens, Math.max(1, this.maxModelLen - 1));
    if (o.apiKey !== undefined && o.apiKey !== null && (typeof o.apiKey !== 'string' || o.apiKey.length === 0)) {
      throw new TypeError('OpenAIService: apiKey must be a non-empty string (or null for none)');
    }
    const retry = o.retryAfterSeconds ?? 1;
    if (!(Number.isFinite(retry) && retry >= 0)) throw new RangeError(`OpenAIService: retryAfterSeconds must be >= 0, got ${o.retryAfterSeconds}`);
    this.opts = {
      maxBodyBytes: posInt('maxBodyBytes', o.maxBodyBytes, 4 * MiB),
      defaultMaxTokens: posInt('defaultMaxTokens', o.defaultMaxTokens, 512),
      retryAfterSeconds: retry,
      apiKeyHash: o.apiKey ? sha256(o.apiKey) : null,
    };
    this.parser = createRequestParser(o.engine.config.vocabSize);
    this.metrics = new ServerMetrics(o.engine, { processMetrics: o.processMetrics });
  }

  /** Generation requests being served. */
  get active(): number {
    return this.inFlight.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Stops admitting requests (503 with Retry-After), waits up to `graceMs` for those in
   * flight to finish, then aborts the rest and waits for them to end.
   */
  async drain(graceMs = 10_000): Promise<void> {
    this.draining = true;
    const all = () => Promise.all([...this.inFlight].map((f) => f.done));
    if (this.inFlight.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    for (const f of this.inFlight) f.ac.abort(new ShutdownAbort('the server is shutting down'));
    await all();
  }

  /** The routes, as an encapsulated fastify plugin (its error handler stays inside). */
  readonly plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    app.setErrorHandler((err, req, reply) => this.sendError(reply, toApiError(err, this.opts.maxBodyBytes)));
    app.addHook('onRequest', async (req, reply) => {
      if (this.opts.apiKeyHash && req.url.includes('/v1/') && !this.authorized(req)) {
        throw new ApiError(401, 'Incorrect or missing API key: send Authorization: Bearer <key>', 'authentication_error', null, 'invalid_api_key');
      }
    });
    const bodyLimit = this.opts.maxBodyBytes;
    app.post('/v1/completions', { bodyLimit }, (req, reply) => this.generate(req, reply, 'completions'));
    app.post('/v1/chat/completions', { bodyLimit }, (req, reply) => this.generate(req, reply, 'chat'));
    app.get('/v1/models', async () => ({
      object: 'list',
      data: [
        {
          id: this.modelName,
          object: 'model',
          created: this.created,
          owned_by: 'kvcake',
          root: this.modelName,
          max_model_len: this.maxModelLen,
          vocab_size: this.engine.config.vocabSize,
          backend: this.engine.backend,
          policy: this.engine.policy,
        },
      ],
    }));
    app.get('/health', async (req, reply) => {
      if (this.draining) return reply.code(503).send({ status: 'draining' });
      return { status: 'ok', backend: this.engine.backend, policy: this.engine.policy, active: this.inFlight.size };
    });
    app.get('/metrics', async (req, reply) => {
      this.metrics.inFlight.set(this.inFlight.size);
      const text = await this.metrics.text();
      return reply.type(this.metrics.contentType).send(text);
    });
  };

  private authorized(req: FastifyRequest): boolean {
    const h = req.headers.authorization;
    if (typeof h !== 'string') return false;
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    // Digests have one length, so the comparison takes the same time whatever was sent.
    return m !== null && timingSafeEqual(sha256(m[1]), this.opts.apiKeyHash!);
  }

  private sendError(reply: FastifyReply, e: ApiError): FastifyReply {
    this.metrics.reject(e.status, e.code);
    if (e.retryAfter !== undefined) reply.header('retry-after', String(Math.ceil(e.retryAfter)));
    return reply.code(e.status).type('application/json').send(e.body());
  }

  private async generate(req: FastifyRequest, reply: FastifyReply, endpoint: 'completions' | 'chat'): Promise<void> {
    const t0 = performance.now();
    if (this.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down', this.opts.retryAfterSeconds);
    const p = endpoint === 'chat' ? this.parser.chat(req.body) : this.parser.completions(req.body);
    if (p.model !== null && p.model !== this.modelName) {
      throw new ApiError(404, `The model '${p.model}' does not exist; this server serves '${this.modelName}'`, 'not_found_error', 'model', 'model_not_found');
    }
    const ids = this.tokenize(p);
    const promptParam = endpoint === 'chat' ? 'messages' : 'prompt';
    if (ids.length > this.maxPromptTokens) {
      throw invalid(promptParam, `the prompt has ${ids.length} tokens; this server accepts at most ${this.maxPromptTokens}`, 'context_length_exceeded');
    }
    const room = this.maxModelLen - ids.length;
    const maxTokens = p.maxTokens ?? Math.min(endpoint === 'chat' ? this.opts.defaultMaxTokens : 16, room);
    if (maxTokens > room) {
      throw invalid('max_tokens', `the prompt (${ids.length} tokens) + max_tokens (${maxTokens}) = ${ids.length + maxTokens} exceeds the model's context of ${this.maxModelLen} tokens`, 'context_length_exceeded');
    }
    if (maxTokens < 1) throw invalid(promptParam, `the prompt (${ids.length} tokens) leaves no room in the model's context of ${this.maxModelLen} tokens`, 'context_length_exceeded');

    const ac = new AbortController();
    const id = `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const gopts: GenerateOptions = {
      maxTokens,
      temperature: p.temperature,
      topP: p.topP,
      topK: p.topK,
      // OpenAI semantics: no seed means a different draw every time.
      seed: p.seed ?? randomInt(0, 2 ** 47),
      stop: p.stop,
      ignoreEos: p.ignoreEos,
      signal: ac.signal,
      requestId: id,
      ...(p.ttftSlo !== null ? { ttftSlo: p.ttftSlo } : {}),
      ...(p.tpotSlo !== null ? { tpotSlo: p.tpotSlo } : {}),
    };
    let gen: Generation;
    try {
      gen = this.engine.generate(ids, gopts);
    } catch (err) {
      throw this.engineError(err);
    }
    // The response closing before we finished it means the client went away.
    const onClose = () => {
      if (!reply.raw.writableFinished) ac.abort(new Error('client disconnected'));
    };
    reply.raw.on('close', onClose);
    // Gone already, while the body was parsed or the prompt tokenized.
    if (reply.raw.destroyed || req.raw.socket?.destroyed) onClose();
    let resolveDone!: () => void;
    const flight: InFlight = { ac, done: new Promise<void>((r) => (resolveDone = r)) };
    this.inFlight.add(flight);
    const ctx: RunContext = { id, endpoint, p, ids, t0, gen, ac, reply };
    try {
      if (p.stream) await this.stream(ctx);
      else await this.complete(ctx);
    } finally {
      reply.raw.off('close', onClose);
      this.inFlight.delete(flight);
      resolveDone();
    }
  }

  private tokenize(p: ParsedRequest): number[] {
    if ('ids' in p.prompt) return p.prompt.ids;
    const tok = this.engine.tokenizer;
    if ('text' in p.prompt) {
      if (!tok) throw invalid('prompt', 'this model has no tokenizer: send the prompt as an array of token ids');
      return tok.encode(p.prompt.text);
    }
    if (!tok) throw invalid('messages', 'this model has no tokenizer, so chat is not available: use /v1/completions with token ids');
    if (!tok.hasChatTemplate) throw invalid('messages', 'this model has no chat template (tokenizer_config.json chat_template): use /v1/completions');
    try {
      return tok.encodeChat(p.prompt.messages);
    } catch (err) {
      throw invalid('messages', `the chat template failed on these messages: ${(err as Error).message}`);
    }
  }

  private engineError(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof EngineBusyError) return new ApiError(429, `the server is busy: ${err.message}`, 'rate_limit_error', null, 'queue_full', this.opts.retryAfterSeconds);
    if (err instanceof EngineClosedError) return new ApiError(503, `the engine is closed: ${err.message}`, 'server_error', null, 'engine_closed', this.opts.retryAfterSeconds);
    if (err instanceof ShutdownAbort) return new ApiError(503, err.message, 'server_error', null, 'shutting_down', this.opts.retryAfterSeconds);
    // The engine checks what the server cannot (a prompt longer than its tiers can ever
    // hold); its argument errors name the function. Anything else is the server's fault.
    if ((err instanceof RangeError || err instanceof TypeError) && err.message.startsWith('generate: ')) return invalid(null, err.message);
    return new ApiError(500, `internal error: ${(err as Error)?.message ?? String(err)}`, 'server_error', null, 'internal_error');
  }

  private usage(r: GenerationResult) {
    const s = r.stats;
    return {
      prompt_tokens: s.promptTokens,
      completion_tokens: s.generatedTokens,
      total_tokens: s.promptTokens + s.generatedTokens,
      prompt_tokens_details: { cached_tokens: s.cachedTokens },
    };
  }

  private observe(ctx: RunContext, times: number[], finishReason: string, generated: number) {
    const end = performance.now();
    const itls: number[] = [];
    for (let i = 1; i < times.length; i++) itls.push((times[i] - times[i - 1]) / 1000);
    this.metrics.observe({
      endpoint: ctx.endpoint,
      finishReason,
      ttft: times.length > 0 ? (times[0] - ctx.t0) / 1000 : null,
      itls,
      e2e: (end - ctx.t0) / 1000,
      promptTokens: ctx.ids.length,
      generatedTokens: generated,
    });
  }

  private async complete(ctx: RunContext): Promise<void> {
    const { gen, reply } = ctx;
    const times: number[] = [];
    let result: GenerationResult;
    try {
      for await (const t of gen) if (t.tokenId >= 0) times.push(performance.now());
      result = await gen.result;
    } catch (err) {
      this.observe(ctx, times, 'abort', times.length);
      throw this.engineError(ctx.ac.signal.aborted && ctx.ac.signal.reason instanceof ShutdownAbort ? ctx.ac.signal.reason : err);
    }
    const fr = result.stats.finishReason;
    const text = result.text;
    this.observe(ctx, times, fr, result.stats.generatedTokens);
    if (fr === 'abort') {
      if (ctx.ac.signal.reason instanceof ShutdownAbort) throw this.engineError(ctx.ac.signal.reason);
      // The client is gone: nothing to send.
      reply.hijack();
      reply.raw.destroy();
      return;
    }
    const base = { id: ctx.id, created: Math.floor(Date.now() / 1000), model: this.modelName };
    const body =
      ctx.endpoint === 'chat'
        ? { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: fr }], usage: this.usage(result) }
        : { ...base, object: 'text_completion', choices: [{ index: 0, text, logprobs: null, finish_reason: fr }], usage: this.usage(result) };
    await reply.code(200).type('application/json').send(body);
  }

  private async stream(ctx: RunContext): Promise<void> {
    const { gen, reply, endpoint, p } = ctx;
    const it = gen[Symbol.asyncIterator]();
    const times: number[] = [];
    // Wait for the first token before sending headers: until then a full queue or a
    // refused request can still be answered with its own status (429, 400).
    let first: IteratorResult<TokenChunk>;
    try {
      first = await it.next();
    } catch (err) {
      this.observe(ctx, times, 'abort', 0);
      throw this.engineError(ctx.ac.signal.reason instanceof ShutdownAbort ? ctx.ac.signal.reason : err);
    }
    reply.hijack();
    const sse = new SseWriter(reply.raw);
    const created = Math.floor(Date.now() / 1000);
    const object = endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const usageNull = p.includeUsage ? { usage: null } : {};
    const chunk = (text: string | null, finish: string | null, role = false) => ({
      id: ctx.id,
      object,
      created,
      model: this.modelName,
      choices: [
        endpoint === 'chat'
          ? { index: 0, delta: role ? { role: 'assistant', content: '' } : text === null ? {} : { content: text }, logprobs: null, finish_reason: finish }
          : { index: 0, text: text ?? '', logprobs: null, finish_reason: finish },
      ],
      ...usageNull,
    });
    let generated = 0;
    let observed = false;
    const observe = (fr: string, n: number) => {
      if (!observed) this.observe(ctx, times, fr, n);
      observed = true;
    };
    try {
      if (endpoint === 'chat') await sse.send(chunk(null, null, true));
      let cur = first;
      while (!cur.done) {
        // tokenId -1: the detokenizer's held-back tail at the end, text without a token.
        if (cur.value.tokenId >= 0) {
          times.push(performance.now());
          generated++;
        }
        await sse.send(chunk(cur.value.text, null));
        cur = await it.next();
      }
      const result = await gen.result;
      const fr = result.stats.finishReason;
      observe(fr, result.stats.generatedTokens);
      if (fr === 'abort') {
        if (ctx.ac.signal.reason instanceof ShutdownAbort) await sse.error(this.engineError(ctx.ac.signal.reason).body());
        sse.end();
        return;
      }
      await sse.send(chunk(endpoint === 'chat' ? null : '', fr));
      if (p.includeUsage) {
        await sse.send({ id: ctx.id, object, created, model: this.modelName, choices: [], usage: this.usage(result) });
      }
      await sse.done();
    } catch (err) {
      observe('abort', generated);
      if (!sse.closed) {
        await sse.error(this.engineError(ctx.ac.signal.reason instanceof ShutdownAbort ? ctx.ac.signal.reason : err).body()).catch(() => {});
      }
      sse.end();
      // Stop the engine's work if it is still going (a write failed, the socket closed).
      ctx.ac.abort(err);
    }
  }
}

interface RunContext {
  id: string;
  endpoint: 'completions' | 'chat';
  p: ParsedRequest;
  ids: number[];
  t0: number;
  gen: Generation;
  ac: AbortController;
  reply: FastifyReply;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Errors from fastify itself (body parsing, limits, content type) in OpenAI's shape. */
function toApiError(err: unknown, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string };
  const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // fastify's parser refuses prototype-poisoning keys with the same error.
      return invalid(null, 'request body is not valid JSON (or holds a __proto__ or constructor.prototype key)', 'invalid_json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalid(null, 'request body is empty; send a JSON object', 'invalid_json');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, `request body is too large: the limit is ${bodyLimit} bytes`, 'invalid_request_error', null, 'body_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported Content-Type: send Content-Type: application/json', 'invalid_request_error', null, 'unsupported_media_type');
  }
  if (status >= 500) return new ApiError(status, `internal error: ${e.message ?? String(err)}`, 'server_error', null, 'internal_error');
  // Other 4xx from fastify: malformed JSON (a SyntaxError carrying 400), prototype poisoning, ...
  const message = err instanceof SyntaxError ? `request body is not valid JSON: ${err.message}` : (e.message ?? 'bad request');
  return new ApiError(status, message, 'invalid_request_error', null, err instanceof SyntaxError ? 'invalid_json' : (e.code ?? null));
}
