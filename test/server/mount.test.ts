// The routes mounted in apps that already exist: a fastify app under a prefix (its own
// routes and error handling untouched), plain node:http and express through the request
// handler.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { createRequestHandler, openaiPlugin } from '../../lib/server/index.js';
import { tinyEngine } from './util.js';

test('mount: openaiPlugin under a prefix in a host fastify app', async () => {
  const engine = await tinyEngine();
  const app = Fastify();
  app.get('/app/ping', async () => ({ pong: true }));
  app.setErrorHandler((err, req, reply) => reply.code(418).send({ host: 'handler' }));
  app.get('/app/boom', async () => {
    throw new Error('x');
  });
  await app.register(openaiPlugin, { engine, modelName: 'tiny', prefix: '/llm' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  try {
    const client = new OpenAI({ baseURL: `${url}/llm/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 3 });
    assert.is(r.choices.length, 1);
    assert.equal(await (await fetch(`${url}/app/ping`)).json(), { pong: true });
    // The host's error handler still handles the host's routes; ours handles ours.
    assert.is((await fetch(`${url}/app/boom`)).status, 418);
    const bad = await fetch(`${url}/llm/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    assert.is(bad.status, 400);
    assert.is(((await bad.json()) as { error: { code: string } }).error.code, 'invalid_json');
  } finally {
    await app.close();
    await engine.close();
  }
});

test('mount: createRequestHandler serves from a plain node:http server', async () => {
  const engine = await tinyEngine();
  const handler = await createRequestHandler({ engine, modelName: 'tiny' });
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true });
    let n = 0;
    for await (const c of stream) n += c.choices.length;
    assert.ok(n >= 2);
    assert.is((await fetch(`${url}/health`)).status, 200);
    assert.is((await fetch(`${url}/nothing`)).status, 404);
  } finally {
    await handler.close();
    await new Promise((r) => server.close(r));
    await engine.close();
  }
});

test('mount: the same handler under a path in an express app, beside the app\'s own routes', async () => {
  const engine = await tinyEngine();
  const handler = await createRequestHandler({ engine, modelName: 'tiny' });
  const app = express();
  app.get('/status', (req, res) => {
    res.json({ app: 'up' });
  });
  app.use('/llm', handler);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((r) => server.once('listening', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const client = new OpenAI({ baseURL: `${url}/llm/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 3, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    assert.is(r.usage!.completion_tokens, 3);
    assert.equal(await (await fetch(`${url}/status`)).json(), { app: 'up' });
    const bad = await fetch(`${url}/llm/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": "hi", "n": 3}' });
    assert.is(bad.status, 400);
    assert.is(((await bad.json()) as { error: { param: string } }).error.param, 'n');
  } finally {
    await handler.close();
    await new Promise((r) => server.close(r));
    await engine.close();
  }
});

test.run();
