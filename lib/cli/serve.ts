// `kvcake serve`: an engine over a model directory or a dummy model, behind the
// OpenAI-compatible server, shut down gracefully on SIGTERM / SIGINT.
import { Command, Option } from 'commander';
import { createEngine } from '../engine/index.js';
import type { EngineOptions } from '../engine/types.js';
import { POLICIES, type PolicyName } from '../sched/index.js';
import { startServer } from '../server/server.js';
import { parseBytes, parseInteger, parsePositive, parseStoreSpec, UsageError, type StoreSpec } from './args.js';
import { DUMMY_PRESETS, dummyTokenizerDir, loadDummyConfig } from './dummy.js';

interface ServeFlags {
  model?: string;
  dummy?: string;
  dummySeed: number;
  tokenizer?: string;
  backend: 'cpu' | 'cuda';
  policy: PolicyName;
  preemption: 'recompute' | 'swap';
  dtype?: 'fp32' | 'fp16' | 'bf16';
  deviceKv: number;
  hostKv: number;
  maxBatchedTokens: number;
  blockSize: number;
  maxRunning: number;
  maxWaiting: number;
  ttftSlo?: number;
  tpotSlo?: number;
  store?: StoreSpec;
  storeDiskBytes: number;
  storeChunkTokens: number;
  storeNamespace?: string;
  storeReadCap?: number;
  modelId?: string;
  cakeSplit?: number;
  host: string;
  port: number;
  apiKey?: string;
  servedModelName?: string;
  maxModelLen?: number;
  maxPromptTokens?: number;
  maxBodyBytes: number;
  defaultMaxTokens: number;
  retryAfter: number;
  shutdownGrace: number;
  logLevel: string;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('Serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics).')
    .addOption(new Option('--model <dir>', 'Hugging Face model directory (config.json, *.safetensors, tokenizer.json)').conflicts('dummy'))
    .addOption(new Option('--dummy <config>', `seeded dummy weights for a config.json path or a preset (${Object.keys(DUMMY_PRESETS).join(', ')})`))
    .addOption(new Option('--dummy-seed <n>', 'seed of the dummy weights').argParser(parseInteger(0)).default(0))
    .addOption(new Option('--tokenizer <dir>', 'tokenizer directory for a dummy model (default: a built-in byte-level tokenizer sized to vocab_size)'))
    .addOption(new Option('--backend <name>', 'compute backend, always explicit').choices(['cpu', 'cuda']).default('cpu'))
    .addOption(new Option('--policy <name>', 'scheduling policy').choices([...POLICIES]).default('baseline'))
    .addOption(new Option('--preemption <mode>', 'how a preempted request gives up its device blocks').choices(['recompute', 'swap']).default('recompute'))
    .addOption(new Option('--dtype <dtype>', 'weights and KV dtype (default: the checkpoint\'s; fp32 for dummy models)').choices(['fp32', 'fp16', 'bf16']))
    .addOption(new Option('--device-kv <size>', 'bytes of the device KV pool (e.g. 512MiB, 8GiB)').argParser(parseBytes).default(512 * 2 ** 20, '512MiB'))
    .addOption(new Option('--host-kv <size>', 'bytes of the host KV pool (LayerKV offloads, swaps); 0 for none').argParser(parseBytes).default(1024 * 2 ** 20, '1GiB'))
    .addOption(new Option('--max-batched-tokens <n>', 'token budget per engine step').argParser(parseInteger(1)).default(2048))
    .addOption(new Option('--block-size <n>', 'tokens per KV block').argParser(parseInteger(8, 256)).default(16))
    .addOption(new Option('--max-running <n>', 'requests decoding at once at most').argParser(parseInteger(1)).default(256))
    .addOption(new Option('--max-waiting <n>', 'requests queued at most; more get 429 with Retry-After').argParser(parseInteger(1)).default(512))
    .addOption(new Option('--ttft-slo <s>', 'default TTFT SLO in seconds for requests that give none').argParser(parsePositive))
    .addOption(new Option('--tpot-slo <s>', 'default TPOT SLO in seconds for requests that give none').argParser(parsePositive))
    .addOption(new Option('--store <tiers>', 'prefix KV store tiers, searched in this order: memory:SIZE, disk:PATH, redis://HOST:PORT (comma-separated)').argParser(parseStoreSpec))
    .addOption(new Option('--store-disk-bytes <size>', 'capacity of the disk tier (LRU beyond it)').argParser(parseBytes).default(32 * 2 ** 30, '32GiB'))
    .addOption(new Option('--store-chunk-tokens <n>', 'tokens per stored chunk, a multiple of --block-size').argParser(parseInteger(1)).default(256))
    .addOption(new Option('--store-namespace <ns>', 'tenant or salt: servers with different namespaces never share a chunk'))
    .addOption(new Option('--store-read-cap <bytes/s>', 'cap the store\'s read bandwidth (to emulate slower storage), e.g. 1.25GB for 10 Gbps').argParser(parseBytes))
    .addOption(new Option('--model-id <id>', 'the model\'s identity in stored chunks (default: derived from the config and weights); name the weights\' revision when servers share a store'))
    .addOption(new Option('--cake-split <k>', 'pin Cake\'s split at chunk k (ablations; default: planned)').argParser(parseInteger(0)))
    .addOption(new Option('--host <addr>', 'address to bind; 0.0.0.0 exposes the server to the network').default('127.0.0.1'))
    .addOption(new Option('--port <n>', 'port to listen on (0: any free port)').argParser(parseInteger(0, 65535)).default(8000))
    .addOption(new Option('--api-key <key>', 'require Authorization: Bearer <key> on /v1/* (default: $KVCAKE_API_KEY, else none)'))
    .addOption(new Option('--served-model-name <name>', 'model id in /v1/models and responses (default: the directory name, or dummy-<config>)'))
    .addOption(new Option('--max-model-len <n>', 'context length: prompt + max_tokens must fit (default: the model\'s)').argParser(parseInteger(1)))
    .addOption(new Option('--max-prompt-tokens <n>', 'longest prompt accepted, in tokens; longer is a 400 (default: max-model-len - 1)').argParser(parseInteger(1)))
    .addOption(new Option('--max-body-bytes <size>', 'largest request body; larger is a 413').argParser(parseBytes).default(4 * 2 ** 20, '4MiB'))
    .addOption(new Option('--default-max-tokens <n>', 'max_tokens of a chat request that gives none (completions default to 16)').argParser(parseInteger(1)).default(512))
    .addOption(new Option('--retry-after <s>', 'Retry-After seconds on 429 and 503').argParser(parseInteger(0)).default(1))
    .addOption(new Option('--shutdown-grace <s>', 'seconds in-flight requests get to finish on SIGTERM before they are aborted').argParser(parseInteger(0)).default(10))
    .addOption(new Option('--log-level <level>', 'server log level').choices(['fatal', 'error', 'warn', 'info', 'debug']).default('info'))
    .action(async (flags: ServeFlags) => {
      await serve(flags);
    });
}

async function serve(f: ServeFlags): Promise<void> {
  if ((f.model === undefined) === (f.dummy === undefined)) throw new UsageError('give one of --model DIR or --dummy CONFIG');
  if (f.tokenizer !== undefined && f.dummy === undefined) throw new UsageError('--tokenizer applies to --dummy models (a --model directory brings its own tokenizer.json)');
  let model: EngineOptions['model'];
  let name: string;
  if (f.model !== undefined) {
    model = f.model;
    name = f.servedModelName ?? (f.model.replace(/\/+$/, '').split('/').pop() || f.model);
  } else {
    const config = loadDummyConfig(f.dummy!);
    const tokenizerDir = f.tokenizer ?? dummyTokenizerDir(config) ?? undefined;
    model = { config, dummySeed: f.dummySeed, ...(tokenizerDir !== undefined ? { tokenizerDir } : {}) };
    name = f.servedModelName ?? `dummy-${f.dummy!.replace(/\.json$/, '').split('/').pop()}`;
  }
  const apiKey = f.apiKey ?? process.env.KVCAKE_API_KEY ?? null;
  const engine = await createEngine({
    model,
    backend: f.backend,
    policy: f.policy,
    preemption: f.preemption,
    ...(f.dtype ? { dtype: f.dtype } : {}),
    deviceKvBytes: f.deviceKv,
    hostKvBytes: f.hostKv,
    maxBatchedTokens: f.maxBatchedTokens,
    blockSize: f.blockSize,
    maxRunning: f.maxRunning,
    maxWaiting: f.maxWaiting,
    ...(f.ttftSlo !== undefined ? { ttftSlo: f.ttftSlo } : {}),
    ...(f.tpotSlo !== undefined ? { tpotSlo: f.tpotSlo } : {}),
    ...(f.store ? { store: storeOptions(f, f.store) } : {}),
    ...(f.modelId !== undefined ? { modelId: f.modelId } : {}),
    ...(f.cakeSplit !== undefined ? { cakeSplit: f.cakeSplit } : {}),
  });
  let server;
  try {
    server = await startServer({
      engine,
      modelName: name,
      apiKey,
      host: f.host,
      port: f.port,
      maxBodyBytes: f.maxBodyBytes,
      defaultMaxTokens: f.defaultMaxTokens,
      retryAfterSeconds: f.retryAfter,
      ...(f.maxModelLen !== undefined ? { maxModelLen: f.maxModelLen } : {}),
      ...(f.maxPromptTokens !== undefined ? { maxPromptTokens: f.maxPromptTokens } : {}),
      processMetrics: true,
      handleSignals: true,
      shutdownGraceMs: f.shutdownGrace * 1000,
      logger: { level: f.logLevel },
    });
  } catch (err) {
    await engine.close();
    throw err;
  }
  const s = engine.stats();
  const tiers = s.prefixStore ? `, prefix store ${[s.prefixStore.store.memory && 'memory', s.prefixStore.store.disk && `disk ${s.prefixStore.store.disk.dir} (${s.prefixStore.store.disk.chunks} chunks)`, s.prefixStore.store.redis && 'redis'].filter(Boolean).join(' -> ')}` : '';
  console.log(
    `kvcake serve: ${name} on ${engine.backend}, policy ${engine.policy}, KV ${s.kv.device.totalBlocks} device + ${s.kv.host.totalBlocks} host blocks${tiers}, ` +
      `listening on ${server.url} (API key ${apiKey ? 'required' : 'not required'}${engine.tokenizer ? '' : '; no tokenizer: prompts must be token ids'})`,
  );
  await server.closed;
  console.log('kvcake serve: stopped');
}

function storeOptions(f: ServeFlags, spec: StoreSpec): NonNullable<EngineOptions['store']> {
  if (f.storeChunkTokens % f.blockSize !== 0) throw new UsageError(`--store-chunk-tokens ${f.storeChunkTokens} must be a multiple of --block-size ${f.blockSize}`);
  return {
    chunkTokens: f.storeChunkTokens,
    memory: spec.memoryBytes !== undefined ? { capacityBytes: spec.memoryBytes } : false,
    disk: spec.diskDir !== undefined ? { dir: spec.diskDir, capacityBytes: f.storeDiskBytes } : false,
    redis: spec.redisUrl !== undefined ? { url: spec.redisUrl } : false,
    ...(f.storeNamespace !== undefined ? { namespace: f.storeNamespace } : {}),
    ...(f.storeReadCap !== undefined ? { readBytesPerSecond: f.storeReadCap } : {}),
  };
}
