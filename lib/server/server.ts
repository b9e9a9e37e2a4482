// Three ways to serve an Engine over HTTP:
//   - `startServer()`: a standalone fastify server (what `kvcake serve` runs), bound to
//     127.0.0.1 unless told otherwise, with graceful shutdown;
//   - `openaiPlugin`: a fastify plugin for an existing fastify app;
//   - `createRequestHandler()`: a `(req, res)` handler for node:http, express, or anything
//     that hands over Node's IncomingMessage / ServerResponse.
//
// Framework: fastify. It is maintained by a large team under the OpenJS Foundation, parses
// and size-limits JSON bodies itself (with prototype-poisoning protection), encapsulates
// plugins (our error handler and hooks do not leak into a host app), has `inject()` for
// tests, closes idle keep-alive connections on shutdown, and its router is exposed as a
// plain Node handler (`routing`), which is what lets the same routes mount under express
// or node:http. Express 5 has none of the encapsulation and no body limit of its own
// beyond body-parser; hono targets Web-standard Request/Response, and SSE with Node
// backpressure would go through an adapter.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { ApiError } from './errors.js';
import { OpenAIService, type ServiceOptions } from './service.js';

function notFound(app: FastifyInstance): void {
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(404, `no route ${req.method} ${req.url.split('?')[0]}`, 'not_found_error', null, 'not_found');
    reply.code(404).send(e.body());
  });
}

/** For an existing fastify app: `app.register(openaiPlugin, { engine, prefix: '/llm' })`. */
export const openaiPlugin: FastifyPluginAsync<ServiceOptions> = async (app, opts) => {
  const svc = new OpenAIService(opts);
  await app.register(svc.plugin);
};

export interface RequestHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly service: OpenAIService;
  /** Drains in-flight requests (see OpenAIService.drain) and closes the fastify instance; the engine stays open. */
  close(graceMs?: number): Promise<void>;
}

/**
 * A node:http / express handler: `http.createServer(handler)` or `app.use('/llm', handler)`
 * (mount it before any body parser: it reads the body itself).
 */
export async function createRequestHandler(opts: ServiceOptions): Promise<RequestHandler> {
  const svc = new OpenAIService(opts);
  const app = Fastify({ logger: false });
  notFound(app);
  await app.register(svc.plugin);
  await app.ready();
  const handler = ((req: IncomingMessage, res: ServerResponse) => app.routing(req, res)) as RequestHandler;
  Object.defineProperty(handler, 'service', { value: svc });
  Object.defineProperty(handler, 'close', {
    value: async (graceMs?: number) => {
      await svc.drain(graceMs);
      await app.close();
    },
  });
  return handler;
}

export interface StartServerOptions extends ServiceOptions {
  /** Address to bind (default 127.0.0.1: reachable only from this machine). */
  host?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Close the engine when the server closes (default true). */
  closeEngine?: boolean;
  /** On SIGTERM / SIGINT, shut down gracefully (default false; `kvcake serve` sets it). */
  handleSignals?: boolean;
  /** Milliseconds in-flight requests get to finish on shutdown before they are aborted (default 10 s). */
  shutdownGraceMs?: number;
  /** fastify's logger option (default off). */
  logger?: boolean | { level: string };
}

export interface RunningServer extends AsyncDisposable {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly app: FastifyInstance;
  readonly service: OpenAIService;
  /** Graceful shutdown: 503 for new requests, in-flight ones finish or are aborted after the
   *  grace period, connections close, then the engine's pools are released. Idempotent. */
  close(graceMs?: number): Promise<void>;
  /** Settles when the server has closed (by close() or a signal). */
  readonly closed: Promise<void>;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`startServer: port must be an integer in [0, 65535], got ${opts.port}`);
  const grace = opts.shutdownGraceMs ?? 10_000;
  const svc = new OpenAIService(opts);
  const app = Fastify({
    logger: opts.logger ?? false,
    // One line per request would drown a busy server's log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Streams can run for minutes; the request itself (headers + body) must arrive in 60 s.
    requestTimeout: 60_000,
    return503OnClosing: true,
  });
  notFound(app);
  await app.register(svc.plugin);
  await app.listen({ host, port });
  const addr = app.server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | null = null;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const onSignal = (sig: NodeJS.Signals) => {
    app.log.info(`${sig}: shutting down (in-flight requests get ${grace} ms)`);
    void close(grace);
  };
  const close = (graceMs = grace): Promise<void> => {
    closing ??= (async () => {
      try {
        await svc.drain(graceMs);
        await app.close();
      } finally {
        if (opts.handleSignals) {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
        try {
          if (opts.closeEngine ?? true) await svc.engine.close();
        } finally {
          resolveClosed();
        }
      }
    })();
    return closing;
  };
  if (opts.handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return {
    url: `http://${urlHost}:${boundPort}`,
    host,
    port: boundPort,
    app,
    service: svc,
    close,
    closed,
    [Symbol.asyncDispose]: () => close(),
  };
}
