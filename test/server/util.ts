// A real engine (dummy weights, CPU backend, the built-in byte tokenizer) behind a real
// server on a loopback port, for the server tests.
import { createEngine, type Engine, type EngineOptions } from '../../lib/engine/index.js';
import { writeByteTokenizer } from '../../lib/model/byte-tokenizer.js';
import { startServer, type RunningServer, type StartServerOptions } from '../../lib/server/index.js';

/** 2 layers, GQA 2/1, head dim 64, vocab 300 (the byte tokenizer's 261 ids and reserved ones). */
export const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  hidden_size: 128,
  intermediate_size: 256,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 64,
  vocab_size: 300,
  max_position_embeddings: 1024,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  rope_scaling: null,
  tie_word_embeddings: true,
  torch_dtype: 'float32',
  bos_token_id: 256,
  eos_token_id: 260,
};
/** Bytes of one fp32 layer-block of 16 tokens: 2 x 1 KV head x 64 x 16 x 4. */
export const BLOCK = 2 * 64 * 16 * 4;
export const LAYERS = 2;

export async function tinyEngine(o: Partial<EngineOptions> = {}): Promise<Engine> {
  return createEngine({
    model: { config: CONFIG, dummySeed: 3, tokenizerDir: writeByteTokenizer(CONFIG.vocab_size) },
    backend: 'cpu',
    dtype: 'fp32',
    deviceKvBytes: 2000 * BLOCK * LAYERS,
    hostKvBytes: 2000 * BLOCK,
    maxBatchedTokens: 512,
    ...o,
  });
}

export interface TestServer {
  engine: Engine;
  server: RunningServer;
  url: string;
  close(): Promise<void>;
}

export async function serveTiny(o: { engine?: Partial<EngineOptions>; server?: Partial<StartServerOptions> } = {}): Promise<TestServer> {
  const engine = await tinyEngine(o.engine);
  const server = await startServer({ engine, port: 0, modelName: 'tiny', ...o.server });
  return { engine, server, url: server.url, close: () => server.close(1000) };
}

export async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, json, text };
}
