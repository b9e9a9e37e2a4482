// The OpenAI-compatible HTTP server over an Engine (kvcake/server).
export { startServer, createRequestHandler, openaiPlugin, type StartServerOptions, type RunningServer, type RequestHandler } from './server.js';
export { OpenAIService, type ServiceOptions } from './service.js';
export { ServerMetrics } from './metrics.js';
export { ApiError, type ApiErrorBody, type ApiErrorType } from './errors.js';
export { createRequestParser, type ParsedRequest } from './params.js';
