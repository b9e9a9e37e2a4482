// The official `openai` npm client against the server, over loopback, on a real engine:
// completions and chat, streaming and not, usage, sampling, stop strings, errors, API keys.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { serveTiny, until, type TestServer } from './util.js';

let ts: TestServer;
let client: OpenAI;

test.before(async () => {
  ts = await serveTiny();
  client = new OpenAI({ baseURL: `${ts.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
test.after(async () => {
  await ts.close();
});

test('openai client: models.list names the served model', async () => {
  const list = await client.models.list();
  assert.equal(
    list.data.map((m) => m.id),
    ['tiny'],
  );
});

test('openai client: a greedy completion equals the engine run directly, with usage', async () => {
  const prompt = 'The cake is';
  const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 12, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.is(r.object, 'text_completion');
  assert.is(r.choices.length, 1);
  assert.is(r.choices[0].finish_reason, 'length');
  const ids = ts.engine.tokenizer!.encode(prompt);
  const direct = await ts.engine.generate(ids, { maxTokens: 12, temperature: 0, ignoreEos: true }).result;
  assert.is(r.choices[0].text, direct.text);
  assert.equal(r.usage, { prompt_tokens: ids.length, completion_tokens: 12, total_tokens: ids.length + 12, prompt_tokens_details: { cached_tokens: 0 } });
});

test('openai client: a streamed completion has the same text, one event per token, and usage last', async () => {
  const body = { model: 'tiny', prompt: 'The cake is', max_tokens: 12, temperature: 0, ignore_eos: true };
  const whole = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
  const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as OpenAI.CompletionCreateParamsStreaming);
  let text = '';
  let tokenEvents = 0;
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | null | undefined = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
      else tokenEvents++;
      assert.is(chunk.usage, null, 'usage is null on every chunk but the last');
    } else usage = chunk.usage;
  }
  assert.is(text, whole.choices[0].text);
  assert.is(tokenEvents, 12);
  assert.is(finish, 'length');
  assert.equal(usage, whole.usage);
});

test('openai client: chat uses the chat template, streaming and not', async () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Hello?' },
  ];
  const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 10, temperature: 0 });
  assert.is(r.object, 'chat.completion');
  assert.is(r.choices[0].message.role, 'assistant');
  const promptIds = ts.engine.tokenizer!.encodeChat(messages);
  assert.is(r.usage!.prompt_tokens, promptIds.length);
  const direct = await ts.engine.generate(promptIds, { maxTokens: 10, temperature: 0 }).result;
  assert.is(r.choices[0].message.content, direct.text);
  assert.is(r.choices[0].finish_reason, direct.stats.finishReason);

  const stream = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let content = '';
  let role: string | undefined;
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    if (chunk.choices.length === 0) {
      usage = chunk.usage;
      continue;
    }
    role ??= chunk.choices[0].delta.role;
    content += chunk.choices[0].delta.content ?? '';
  }
  assert.is(role, 'assistant');
  assert.is(content, r.choices[0].message.content);
  assert.equal(usage, r.usage);
});

test('openai client: a seed makes sampling repeatable; a stop string cuts the text before it', async () => {
  const body = { model: 'tiny', prompt: 'Once upon', max_tokens: 16, temperature: 0.9, top_p: 0.95, seed: 1234, ignore_eos: true };
  const a = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
  const b = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
  assert.is(a.choices[0].text, b.choices[0].text);
  const greedy = await client.completions.create({ model: 'tiny', prompt: 'Once upon', max_tokens: 16, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  const full = greedy.choices[0].text;
  // A stop string taken from the middle of the greedy output; it may span tokens.
  const stop = full.slice(6, 8);
  assert.is(stop.length, 2);
  const body2 = { model: 'tiny', prompt: 'Once upon', max_tokens: 16, temperature: 0, stop: [stop] };
  const cut = await client.completions.create(body2);
  assert.is(cut.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.is(cut.choices[0].finish_reason, 'stop');
  // Streamed, no part of the stop string leaks out before the match is known.
  let streamed = '';
  for await (const c of await client.completions.create({ ...body2, stream: true })) streamed += c.choices[0]?.text ?? '';
  assert.is(streamed, cut.choices[0].text);
});

test('openai client: errors carry status, param and code', async () => {
  try {
    await client.completions.create({ model: 'tiny', prompt: 'x', n: 2 });
    assert.unreachable('n = 2 was accepted');
  } catch (err) {
    assert.instance(err, OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    assert.is(e.status, 400);
    assert.is(e.param, 'n');
    assert.is((e.error as { message: string }).message, 'n must be 1 (kvcake returns one choice per request)');
  }
  try {
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    assert.unreachable('an unknown model was accepted');
  } catch (err) {
    assert.instance(err, OpenAI.NotFoundError);
    assert.is((err as InstanceType<typeof OpenAI.NotFoundError>).code, 'model_not_found');
  }
});

test('openai client: with a prefix store, a repeated long prompt reports cached_tokens and gives the same text', async () => {
  const stored = await serveTiny({ engine: { policy: 'load-only', store: { chunkTokens: 32, memory: { capacityBytes: 16 << 20 }, disk: false, log: () => {} } } });
  try {
    const c = new OpenAI({ baseURL: `${stored.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const prompt = 'A long prompt whose prefix is worth keeping: '.repeat(6);
    const body = { model: 'tiny', prompt, max_tokens: 8, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming;
    const first = await c.completions.create(body);
    assert.is(first.usage!.prompt_tokens_details!.cached_tokens, 0);
    await until(() => stored.engine.stats().transfersInFlight === 0, 'the saves');
    const second = await c.completions.create(body);
    assert.is(second.choices[0].text, first.choices[0].text);
    const cached = second.usage!.prompt_tokens_details!.cached_tokens!;
    assert.ok(cached > 0 && cached % 32 === 0 && cached <= second.usage!.prompt_tokens, `cached_tokens ${cached}`);
  } finally {
    await stored.close();
  }
});

test('openai client: with an API key, a wrong key is a 401 and the right one works', async () => {
  const keyed = await serveTiny({ server: { apiKey: 'sekret-123' } });
  try {
    const bad = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    try {
      await bad.models.list();
      assert.unreachable('a wrong key was accepted');
    } catch (err) {
      assert.instance(err, OpenAI.AuthenticationError);
      assert.is((err as InstanceType<typeof OpenAI.AuthenticationError>).code, 'invalid_api_key');
    }
    const good = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sekret-123', maxRetries: 0 });
    const r = await good.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 2 });
    assert.is(r.choices.length, 1);
    // Health and metrics stay open for probes and scrapers.
    assert.is((await fetch(`${keyed.url}/health`)).status, 200);
    assert.is((await fetch(`${keyed.url}/metrics`)).status, 200);
  } finally {
    await keyed.close();
  }
});

test.run();
