// Request bodies of /v1/completions and /v1/chat/completions: JSON schemas checked by Ajv
// (the validator fastify itself uses), then the checks a schema cannot state, into one
// plain request the route hands to the engine.
//
// The schemas are strict where silence would mislead: an unknown parameter is a 400, not
// ignored (OpenAI does the same), and OpenAI parameters kvcake does not implement are
// accepted only at their neutral value (frequency_penalty 0, n 1, ...), so a client that
// asks for a penalty learns that it did not get one. Types are never coerced ("0.5" is not
// a number) and nothing is filled in by the validator; defaults are applied below, in one
// place.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ChatMessage } from '../model/tokenizer.js';
import { ApiError, invalid } from './errors.js';

export interface ParsedRequest {
  endpoint: 'completions' | 'chat';
  model: string | null;
  /** Text to tokenize (completions with a string prompt), token ids, or chat messages. */
  prompt: { text: string } | { ids: number[] } | { messages: ChatMessage[] };
  /** null: the endpoint's default. */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  /** 0 = off. */
  topK: number;
  /** null: a fresh seed per request. */
  seed: number | null;
  stop: string[];
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  ttftSlo: number | null;
  tpotSlo: number | null;
}

const MAX_INT32 = 2 ** 31 - 1;
const nullable = (s: Record<string, unknown>) => ({ ...s, type: [s.type as string, 'null'] });
const neutral = (value: unknown, what: string) => ({ enum: value === null ? [null] : [value, null], description: `${JSON.stringify(value)} (${what} is not supported)` });

function common(vocabLimit: number) {
  const tokenId = { type: 'integer', minimum: 0, maximum: vocabLimit - 1 };
  return {
    tokenId,
    props: {
      model: { type: 'string', maxLength: 512 },
      max_tokens: nullable({ type: 'integer', minimum: 1, maximum: MAX_INT32 }),
      temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
      top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
      top_k: nullable({ type: 'integer', minimum: -1, maximum: MAX_INT32 }),
      seed: nullable({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
      stop: {
        anyOf: [
          { type: 'null' },
          { type: 'string', minLength: 1, maxLength: 1024 },
          { type: 'array', maxItems: 4, items: { type: 'string', minLength: 1, maxLength: 1024 } },
        ],
        description: 'a non-empty string or an array of at most 4 of them',
      },
      n: { enum: [1, null], description: '1 (kvcake returns one choice per request)' },
      stream: nullable({ type: 'boolean' }),
      stream_options: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: { include_usage: { type: 'boolean' } },
      },
      user: { type: 'string', maxLength: 512 },
      frequency_penalty: neutral(0, 'a frequency penalty'),
      presence_penalty: neutral(0, 'a presence penalty'),
      // Extensions: kvcake's per-request SLOs, and vLLM's ignore_eos (benchmark clients send it).
      ttft_slo: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 86400 }),
      tpot_slo: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 86400 }),
      ignore_eos: { type: 'boolean' },
    },
  };
}

function completionSchema(vocabLimit: number) {
  const { tokenId, props } = common(vocabLimit);
  return {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      ...props,
      prompt: {
        anyOf: [
          { type: 'string' },
          { type: 'array', minItems: 1, maxItems: 1, items: { type: 'string' } },
          { type: 'array', minItems: 1, items: tokenId },
          { type: 'array', minItems: 1, maxItems: 1, items: { type: 'array', minItems: 1, items: tokenId } },
        ],
        description: `a string, or a non-empty array of token ids in [0, ${vocabLimit}) (one prompt per request: an array of prompts must have one element)`,
      },
      echo: neutral(false, 'echo'),
      best_of: neutral(1, 'best_of'),
      logprobs: neutral(null, 'logprobs'),
      suffix: neutral(null, 'suffix'),
    },
  };
}

function chatSchema(vocabLimit: number) {
  const { props } = common(vocabLimit);
  const part = {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'text'],
    properties: { type: { const: 'text' }, text: { type: 'string' } },
  };
  return {
    type: 'object',
    additionalProperties: false,
    required: ['messages'],
    properties: {
      ...props,
      max_completion_tokens: nullable({ type: 'integer', minimum: 1, maximum: MAX_INT32 }),
      logprobs: neutral(false, 'logprobs'),
      messages: {
        type: 'array',
        minItems: 1,
        maxItems: 4096,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['role', 'content'],
          properties: {
            role: { enum: ['system', 'developer', 'user', 'assistant'], description: "one of 'system', 'developer', 'user', 'assistant'" },
            content: {
              anyOf: [{ type: 'string' }, { type: 'array', items: part }],
              description: 'a string or an array of { type: "text", text } parts',
            },
            name: { type: 'string', maxLength: 512 },
          },
        },
      },
    },
  };
}

/** "/messages/0/content" -> "messages[0].content" */
function paramName(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function describe(errors: ErrorObject[]): ApiError {
  // With anyOf, Ajv reports each branch's failure and then the anyOf itself: the last error
  // is the one whose schema says what was wanted.
  const e = errors.find((x) => x.keyword === 'additionalProperties' || x.keyword === 'required') ?? errors[errors.length - 1];
  if (e.keyword === 'additionalProperties') {
    const prop = (e.params as { additionalProperty: string }).additionalProperty;
    return invalid(paramName(e.instancePath, prop), `Unrecognized request argument supplied: ${paramName(e.instancePath, prop)}`);
  }
  if (e.keyword === 'required') {
    const prop = (e.params as { missingProperty: string }).missingProperty;
    return invalid(paramName(e.instancePath, prop), `${paramName(e.instancePath, prop)} is required`);
  }
  const param = paramName(e.instancePath) || null;
  const wanted = (e.parentSchema as { description?: string } | undefined)?.description;
  let msg = e.message ?? 'is invalid';
  if (wanted && (e.keyword === 'anyOf' || e.keyword === 'enum' || e.keyword === 'const')) msg = `must be ${wanted}`;
  else if (e.keyword === 'type') {
    const types = String((e.params as { type: string }).type).split(',').filter((t) => t !== 'null');
    const named = types.map((t) => (t === 'integer' || t === 'object' || t === 'array' ? `an ${t}` : `a ${t}`)).join(' or ');
    msg = typeof e.data === 'number' && !Number.isFinite(e.data) ? `must be a finite number, got ${e.data}` : `must be ${named}, got ${jsonType(e.data)}`;
  }
  return invalid(param, param ? `${param} ${msg}` : `request body ${msg}`);
}

function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v).slice(0, 40)}`;
}

export interface RequestParser {
  completions(body: unknown): ParsedRequest;
  chat(body: unknown): ParsedRequest;
}

/** `vocabLimit`: token ids in prompts must be below it. */
export function createRequestParser(vocabLimit: number): RequestParser {
  const ajv = new Ajv({ verbose: true, allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: true, strictTypes: false });
  const vComp = ajv.compile(completionSchema(vocabLimit));
  const vChat = ajv.compile(chatSchema(vocabLimit));
  const check = (v: ValidateFunction, body: unknown) => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(null, 'request body must be a JSON object');
    if (!v(body)) throw describe(v.errors ?? []);
    return body as Record<string, unknown>;
  };
  return {
    completions(body) {
      const b = check(vComp, body);
      const p = b.prompt as string | string[] | number[] | number[][];
      let prompt: ParsedRequest['prompt'];
      if (typeof p === 'string') prompt = { text: p };
      else if (typeof p[0] === 'string') prompt = { text: p[0] };
      else if (Array.isArray(p[0])) prompt = { ids: p[0] };
      else prompt = { ids: p as number[] };
      if ('text' in prompt && prompt.text.length === 0) throw invalid('prompt', 'prompt must not be empty');
      return finish('completions', b, prompt, b.max_tokens);
    },
    chat(body) {
      const b = check(vChat, body);
      if (b.max_tokens != null && b.max_completion_tokens != null) {
        throw invalid('max_completion_tokens', 'give max_tokens or max_completion_tokens, not both');
      }
      const messages = (b.messages as { role: string; content: string | { text: string }[]; name?: string }[]).map((m) => ({
        role: m.role,
        content: typeof m.content === 'string' ? m.content : m.content.map((c) => c.text).join(''),
        ...(m.name !== undefined ? { name: m.name } : {}),
      }));
      return finish('chat', b, { messages }, b.max_completion_tokens ?? b.max_tokens);
    },
  };
}

function finish(endpoint: ParsedRequest['endpoint'], b: Record<string, unknown>, prompt: ParsedRequest['prompt'], maxTokens: unknown): ParsedRequest {
  const stream = b.stream === true;
  const so = b.stream_options as { include_usage?: boolean } | null | undefined;
  if (so != null && !stream) throw invalid('stream_options', 'stream_options is only allowed when stream is true');
  const stop = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : (b.stop as string[]);
  const topK = (b.top_k as number | null | undefined) ?? 0;
  return {
    endpoint,
    model: (b.model as string | undefined) ?? null,
    prompt,
    maxTokens: (maxTokens as number | null | undefined) ?? null,
    temperature: (b.temperature as number | null | undefined) ?? 1,
    topP: (b.top_p as number | null | undefined) ?? 1,
    topK: topK === -1 ? 0 : topK,
    seed: (b.seed as number | null | undefined) ?? null,
    stop,
    ignoreEos: b.ignore_eos === true,
    stream,
    includeUsage: so?.include_usage === true,
    ttftSlo: (b.ttft_slo as number | null | undefined) ?? null,
    tpotSlo: (b.tpot_slo as number | null | undefined) ?? null,
  };
}
