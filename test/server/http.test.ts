// Raw HTTP against the server on a real engine: malformed and hostile input, limits, the
// queue limit, clients that disconnect mid-stream, metrics, and shutdown.
import http from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { postJson, serveTiny, until, type TestServer } from './util.js';

let ts: TestServer;
test.before(async () => {
  ts = await serveTiny({ server: { maxBodyBytes: 64 * 1024, maxPromptTokens: 200, maxModelLen: 512 } });
});
test.after(async () => {
  await ts.close();
});

const C = () => `${ts.url}/v1/completions`;

async function expectError(body: unknown, status: number, param: string | null, message: string | RegExp, code?: string | null) {
  const r = await postJson(C(), body);
  assert.is(r.status, status, r.text);
  assert.type(r.json?.error, 'object', r.text);
  assert.equal(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.is(r.json.error.param, param);
  if (typeof message === 'string') assert.is(r.json.error.message, message);
  else assert.match(r.json.error.message, message);
  if (code !== undefined) assert.is(r.json.error.code, code);
  return r;
}

test('http: malformed JSON, an empty body and a non-object body are 400s', async () => {
  const notJson = 'request body is not valid JSON (or holds a __proto__ or constructor.prototype key)';
  await expectError('{"prompt": "hi", ', 400, null, notJson, 'invalid_json');
  await expectError('', 400, null, 'request body is empty; send a JSON object', 'invalid_json');
  await expectError('[1, 2]', 400, null, 'request body must be a JSON object');
  await expectError('"just a string"', 400, null, 'request body must be a JSON object');
  await expectError('{"prompt": "hi", "__proto__": {"admin": true}}', 400, null, notJson, 'invalid_json');
  await expectError('{"prompt": "hi", "constructor": {"prototype": {"admin": true}}}', 400, null, notJson, 'invalid_json');
});

test('http: wrong types, unknown and unsupported parameters name the parameter', async () => {
  await expectError({ prompt: 'hi', temperature: 'hot' }, 400, 'temperature', 'temperature must be a number, got string "hot"');
  await expectError({ prompt: 'hi', max_tokens: 2.5 }, 400, 'max_tokens', 'max_tokens must be an integer, got number 2.5');
  await expectError({ prompt: 'hi', stream: 'yes' }, 400, 'stream', 'stream must be a boolean, got string "yes"');
  await expectError({ prompt: 'hi', logit_bias: {} }, 400, 'logit_bias', 'Unrecognized request argument supplied: logit_bias');
  await expectError({ prompt: 'hi', presence_penalty: 0.5 }, 400, 'presence_penalty', 'presence_penalty must be 0 (a presence penalty is not supported)');
  await expectError({ prompt: 'hi', stream_options: { include_usage: true } }, 400, 'stream_options', 'stream_options is only allowed when stream is true');
  await expectError({ prompt: ['a', 'b'] }, 400, 'prompt', /one prompt per request/);
  await expectError({ prompt: [1, 2, 300] }, 400, 'prompt', /token ids in \[0, 300\)/);
  await expectError({ max_tokens: 3 }, 400, 'prompt', 'prompt is required');
  const chat = await postJson(`${ts.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }, { role: 'tool', content: 'x' }] });
  assert.is(chat.status, 400);
  assert.is(chat.json.error.param, 'messages[1].role');
});

test('http: huge and non-finite numbers are 400s, never a crash', async () => {
  await expectError('{"prompt": "hi", "max_tokens": 1e300}', 400, 'max_tokens', 'max_tokens must be <= 2147483647');
  await expectError('{"prompt": "hi", "temperature": 1e400}', 400, 'temperature', 'temperature must be a finite number, got Infinity');
  await expectError('{"prompt": "hi", "seed": 18446744073709551615}', 400, 'seed', 'seed must be <= 9007199254740991');
  await expectError('{"prompt": "hi", "top_k": -5}', 400, 'top_k', 'top_k must be >= -1');
  await expectError({ prompt: 'hi', ttft_slo: 0 }, 400, 'ttft_slo', 'ttft_slo must be > 0');
  // Still serving.
  const ok = await postJson(C(), { prompt: 'hi', max_tokens: 2 });
  assert.is(ok.status, 200);
});

test('http: body limit 413, prompt limit and context 400s, wrong content type 415', async () => {
  await expectError(JSON.stringify({ prompt: 'x'.repeat(70 * 1024) }), 413, null, 'request body is too large: the limit is 65536 bytes', 'body_too_large');
  await expectError({ prompt: Array.from({ length: 201 }, () => 65) }, 400, 'prompt', 'the prompt has 201 tokens; this server accepts at most 200', 'context_length_exceeded');
  await expectError({ prompt: Array.from({ length: 100 }, () => 65), max_tokens: 413 }, 400, 'max_tokens', "the prompt (100 tokens) + max_tokens (413) = 513 exceeds the model's context of 512 tokens", 'context_length_exceeded');
  const form = await fetch(C(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'prompt=hi' });
  assert.is(form.status, 415);
  assert.is(((await form.json()) as { error: { code: string } }).error.code, 'unsupported_media_type');
});

test('http: unknown routes are 404 in the same shape; /health and /v1/models answer', async () => {
  const r = await fetch(`${ts.url}/v1/embeddings`, { method: 'POST' });
  assert.is(r.status, 404);
  assert.equal(await r.json(), { error: { message: 'no route POST /v1/embeddings', type: 'not_found_error', param: null, code: 'not_found' } });
  const h = (await (await fetch(`${ts.url}/health`)).json()) as { status: string; backend: string };
  assert.is(h.status, 'ok');
  assert.is(h.backend, 'cpu');
  const m = (await (await fetch(`${ts.url}/v1/models`)).json()) as { data: { id: string; max_model_len: number; vocab_size: number }[] };
  assert.is(m.data[0].max_model_len, 512);
  assert.is(m.data[0].vocab_size, 300);
});

/** Opens a streaming completion and resolves once `events` data events arrived; returns the request. */
function openStream(body: Record<string, unknown>, events: number): Promise<{ req: http.ClientRequest; res: http.IncomingMessage; seen: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(C(), { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let seen = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        seen += d;
        if ((seen.match(/^data: /gm) ?? []).length >= events) resolve({ req, res, seen });
      });
      res.on('error', () => {});
      res.on('end', () => reject(new Error(`stream ended after ${seen}`)));
    });
    req.on('error', () => {});
    req.end(JSON.stringify({ stream: true, ...body }));
  });
}

test('http: a client that disconnects mid-stream aborts its request and every block comes back', async () => {
  const before = ts.engine.stats().totals.aborted;
  const { req } = await openStream({ prompt: Array.from({ length: 60 }, (_, i) => i), max_tokens: 400, ignore_eos: true }, 3);
  assert.ok(ts.engine.stats().kv.device.usedBlocks > 0, 'the request holds blocks while it streams');
  req.destroy();
  await until(() => ts.engine.stats().totals.aborted > before && ts.engine.stats().running === 0, 'the abort to reach the engine');
  const st = ts.engine.stats();
  assert.is(st.kv.device.usedBlocks, 0);
  assert.is(st.kv.host.usedBlocks, 0);
  assert.ok(st.totals.generatedTokens < 400 + 100, 'the request stopped early');
  const metrics = await (await fetch(`${ts.url}/metrics`)).text();
  assert.match(metrics, /kvcake_requests_finished_total\{endpoint="completions",finish_reason="abort"\} [1-9]/);
});

test('http: a client that disconnects from a non-streaming request aborts it too', async () => {
  const before = ts.engine.stats().totals.aborted;
  const req = http.request(C(), { method: 'POST', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify({ prompt: [1, 2, 3, 4], max_tokens: 400, ignore_eos: true }));
  await until(() => ts.engine.stats().running > 0, 'the request to start');
  req.destroy();
  await until(() => ts.engine.stats().totals.aborted > before && ts.engine.stats().running === 0, 'the abort to reach the engine');
  assert.is(ts.engine.stats().kv.device.usedBlocks, 0);
});

test('http: /metrics exports latency histograms, queues, KV blocks per tier and the policy counters', async () => {
  const r = await postJson(C(), { prompt: 'hello', max_tokens: 5, ignore_eos: true });
  assert.is(r.status, 200);
  const text = await (await fetch(`${ts.url}/metrics`)).text();
  for (const name of [
    'kvcake_time_to_first_token_seconds_count',
    'kvcake_time_per_output_token_seconds_count',
    'kvcake_inter_token_latency_seconds_count',
    'kvcake_e2e_request_latency_seconds_count',
    'kvcake_requests_waiting',
    'kvcake_requests_running',
    'kvcake_kv_blocks_used{tier="device"}',
    'kvcake_kv_blocks_used{tier="host"}',
    'kvcake_kv_blocks_total{tier="device"} 4000',
    'kvcake_prefix_cache_hit_rate',
    'kvcake_offloaded_bytes_total',
    'kvcake_loaded_bytes_total',
    'kvcake_saved_bytes_total',
    'kvcake_preemptions_total',
    'kvcake_generation_tokens_total',
  ]) {
    assert.ok(text.includes(name), `missing ${name}`);
  }
  const count = Number(/kvcake_time_to_first_token_seconds_count (\d+)/.exec(text)![1]);
  assert.ok(count >= 1);
  const itl = Number(/kvcake_inter_token_latency_seconds_count (\d+)/.exec(text)![1]);
  assert.ok(itl >= 4, `ITL count ${itl}`);
});

test('http: a request the engine can never hold is a 400 with its reason, streaming or not', async () => {
  const small = await serveTiny({ engine: { deviceKvBytes: 4 * 2 * 64 * 16 * 4 * 2, hostKvBytes: 0 } });
  try {
    for (const stream of [false, true]) {
      const r = await postJson(`${small.url}/v1/completions`, { prompt: Array.from({ length: 100 }, () => 7), max_tokens: 4, stream });
      assert.is(r.status, 400, r.text);
      assert.match(r.json.error.message, /^generate: request rejected: /);
    }
    const ok = await postJson(`${small.url}/v1/completions`, { prompt: [1, 2, 3], max_tokens: 4 });
    assert.is(ok.status, 200, ok.text);
  } finally {
    await small.close();
  }
});

test('http: a full engine queue is a 429 with Retry-After; the others complete', async () => {
  const busy = await serveTiny({ engine: { maxRunning: 1, maxWaiting: 1 }, server: { retryAfterSeconds: 2 } });
  try {
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => postJson(`${busy.url}/v1/completions`, { prompt: [i + 1, 2, 3], max_tokens: 30, ignore_eos: true, stream: i % 2 === 0 })));
    const codes = rs.map((r) => r.status);
    assert.ok(codes.includes(429), `no 429 among ${codes}`);
    for (const r of rs) {
      if (r.status === 429) {
        assert.is(r.headers.get('retry-after'), '2');
        assert.is(r.json.error.code, 'queue_full');
        assert.is(r.json.error.type, 'rate_limit_error');
      } else assert.is(r.status, 200, r.text);
    }
    await until(() => busy.engine.stats().running === 0, 'the engine to idle');
    assert.is(busy.engine.stats().kv.device.usedBlocks, 0);
  } finally {
    await busy.close();
  }
});

test('http: shutdown lets a short request finish, aborts a long one after the grace period, then releases the engine', async () => {
  const s = await serveTiny();
  // The long request (about 1000 steps) runs first; the short one (5 steps) joins it, and the
  // close comes once both reached the engine, so the short one finishes within the grace
  // period and the long one cannot.
  let short: ReturnType<typeof postJson> | undefined;
  const long = await new Promise<string>((resolve) => {
    const req = http.request(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.end(JSON.stringify({ prompt: [1, 2, 3], max_tokens: 1000, ignore_eos: true, stream: true }));
    void until(() => s.engine.stats().running >= 1, 'the long request')
      .then(() => {
        short = postJson(`${s.url}/v1/completions`, { prompt: [5, 6, 7], max_tokens: 5, ignore_eos: true });
        return until(() => s.engine.stats().totals.requests >= 2, 'the short request');
      })
      .then(() => void s.server.close(100));
  });
  assert.match(long, /"code":"shutting_down"/);
  assert.ok(long.trimEnd().endsWith('data: [DONE]'));
  const r = await short!;
  assert.is(r.status, 200, r.text);
  await s.server.closed;
  // Closed: new requests cannot connect, and the engine refuses work.
  assert.throws(() => s.engine.generate([1], { maxTokens: 1 }), /closed/);
  assert.equal((s.engine as unknown as { liveBytes(): { device: number; host: number } }).liveBytes(), { device: 0, host: 0 });
});

test.run();
