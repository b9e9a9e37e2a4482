// A loaded model: config, weights in native tensors, the native forward runner, and the
// tokenizer when the directory has one.
//
// forward(step) is the engine's entry point (one native call and one Promise per step,
// over the engine's paged pool and per-layer block tables). generate() is a plain loop for
// tests and examples: one sequence over its own pool with trivial block tables, no
// scheduler.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Backend, createBackend, type Tensor } from '../backend.js';
import type { DType } from '../backend/dtype.js';
import { createModelRunner, type ForwardResult, type ForwardStep, type ForwardWork, type LayerWeights, type ModelRunner, type RunnerWeights } from '../backend/model.js';
import { ops } from '../backend/ops.js';
import { ModelConfigError, parseEosTokenIds, parseModelConfig, type ModelConfig } from './config.js';
import { openCheckpoint, type TensorInfo } from './safetensors.js';
import { bindCheckpoint, dummyRange, expectedWeights, type WeightRole, type WeightSpec } from './weights.js';
import { Tokenizer } from './tokenizer.js';
import { resolveSampling, type SamplingOptions } from './sampling.js';
import { ContiguousKv, type StepItem } from './contiguous-kv.js';

export type ModelSource =
  | { backend: Backend | 'cpu' | 'cuda'; dir: string }
  | { backend: Backend | 'cpu' | 'cuda'; config: ModelConfig | Record<string, unknown>; dummySeed: number };

export interface LoadModelOptions {
  /** Dtype of the GEMM weights and the embedding: default the checkpoint's torch_dtype. Norms and biases are fp32. */
  dtype?: DType;
  signal?: AbortSignal;
}

export interface ModelGenerateOptions {
  maxTokens: number;
  sampling?: SamplingOptions;
  /** Stop after any of these ids (default: the config's EOS ids); the stop token is returned. */
  stopTokenIds?: readonly number[];
  /** Prompt tokens per forward step (chunked prefill); default the whole prompt. */
  prefillChunk?: number;
  /** KV pool dtype (default fp16 when the weights are 16-bit, else fp32) and block size (default 16). */
  kvDtype?: DType;
  blockSize?: number;
  /** Also return the logits of every prompt token and of every generated step. */
  returnLogits?: boolean;
  signal?: AbortSignal;
}

export interface ModelGenerateResult {
  tokenIds: number[];
  finishReason: 'length' | 'stop';
  /** With returnLogits: [promptLen][vocab] for the prompt, then one row per generated token after the first. */
  promptLogits?: Float32Array[];
  stepLogits?: Float32Array[];
}

export class Model {
  private runner: ModelRunner | null;
  private tensors: Tensor[];

  /** @internal */
  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly dtype: DType,
    runner: ModelRunner,
    tensors: Tensor[],
    readonly tokenizer: Tokenizer | null,
  ) {
    this.runner = runner;
    this.tensors = tensors;
  }

  get released(): boolean {
    return this.runner === null;
  }

  /** Bytes of weights held in native tensors. */
  get weightBytes(): number {
    return this.tensors.reduce((a, t) => a + t.bytes, 0);
  }

  /** One forward step over the engine's pool (see docs/model-native-api.md, Forward runner). */
  forward(step: ForwardStep): ForwardWork {
    if (!this.runner) throw new Error('forward: the model was released');
    return this.runner.forward(step);
  }

  /**
   * Generates up to maxTokens after `promptIds` for one sequence, on a pool of its own:
   * layer l's blocks are l * blocksPerLayer + j, so block tables and slots are arithmetic.
   */
  async generate(promptIds: ArrayLike<number>, opts: ModelGenerateOptions): Promise<ModelGenerateResult> {
    const c = this.config;
    const prompt = Int32Array.from(promptIds);
    if (prompt.length === 0) throw new RangeError('generate: promptIds is empty');
    const maxTokens = opts.maxTokens;
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new RangeError(`generate: maxTokens = ${maxTokens} must be a positive integer`);
    const total = prompt.length + maxTokens;
    if (total > c.maxContextLen)
      throw new RangeError(`generate: prompt (${prompt.length}) + maxTokens (${maxTokens}) = ${total} exceeds the model's context of ${c.maxContextLen} tokens`);
    const chunk = opts.prefillChunk ?? prompt.length;
    if (!Number.isSafeInteger(chunk) || chunk < 1) throw new RangeError(`generate: prefillChunk = ${chunk} must be a positive integer`);
    const sampling = resolveSampling(opts.sampling, 'generate: sampling');
    const stop = new Set(opts.stopTokenIds ?? c.eosTokenIds);
    const kv = new ContiguousKv(this.backend, c, {
      maxSeqs: 1,
      maxLen: total,
      blockSize: opts.blockSize ?? 16,
      dtype: opts.kvDtype ?? (this.dtype === 'fp32' ? 'fp32' : 'fp16'),
    });
    const wantLogits = opts.returnLogits === true;
    const result: ModelGenerateResult = { tokenIds: [], finishReason: 'length', ...(wantLogits ? { promptLogits: [], stepLogits: [] } : {}) };
    const run = (item: StepItem) => {
      opts.signal?.throwIfAborted();
      return this.forward(kv.step([item], { returnLogits: wantLogits })).work;
    };
    const rows = (r: ForwardResult, n: number) => Array.from({ length: n }, (_, i) => r.logits!.slice(i * c.vocabSize, (i + 1) * c.vocabSize));
    try {
      let next = -1;
      for (let at = 0; at < prompt.length; at += chunk) {
        const tokens = prompt.subarray(at, Math.min(at + chunk, prompt.length));
        const last = at + tokens.length === prompt.length;
        // Logits of every prompt token when asked (to compare chunkings), else only the last.
        const logits = wantLogits ? 'all' : last ? 'last' : 'none';
        const r = await run({ seq: 0, tokens, start: at, logits, sampling, counter: 0 });
        if (wantLogits) result.promptLogits!.push(...rows(r, tokens.length));
        if (last) next = r.tokenIds[r.tokenIds.length - 1];
      }
      for (let g = 0; ; g++) {
        result.tokenIds.push(next);
        if (stop.has(next)) {
          result.finishReason = 'stop';
          break;
        }
        if (result.tokenIds.length >= maxTokens) break;
        const r = await run({ seq: 0, tokens: [next], start: prompt.length + g, logits: 'last', sampling, counter: g + 1 });
        if (wantLogits) result.stepLogits!.push(...rows(r, 1));
        next = r.tokenIds[0];
      }
      return result;
    } finally {
      kv.release();
    }
  }

  /** Frees the weights and the runner (safe while steps are in flight: they finish first). */
  release(): void {
    if (!this.runner) return;
    this.runner.release();
    this.runner = null;
    for (const t of this.tensors) t.release();
    this.tensors = [];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}

/** Loads a model from a Hugging Face directory, or builds one with dummy weights from a seed. */
export async function loadModel(src: ModelSource, opts: LoadModelOptions = {}): Promise<Model> {
  if (typeof src !== 'object' || src === null || !('dir' in src || 'config' in src))
    throw new TypeError('loadModel: source must be { backend, dir } or { backend, config, dummySeed }');
  if (opts.dtype !== undefined && opts.dtype !== 'fp32' && opts.dtype !== 'fp16' && opts.dtype !== 'bf16')
    throw new RangeError(`loadModel: dtype must be 'fp32', 'fp16' or 'bf16', got ${JSON.stringify(opts.dtype)}`);
  let config: ModelConfig;
  let tokenizer: Tokenizer | null = null;
  let ckpt: Map<string, TensorInfo> | null = null;
  let seed = 0;
  if ('dir' in src) {
    if (typeof src.dir !== 'string') throw new TypeError('loadModel: dir must be a string');
    const cfgPath = path.join(src.dir, 'config.json');
    config = parseModelConfig(await readJson(cfgPath, ModelConfigError), cfgPath);
    // generation_config.json may name more stop tokens than config.json (Llama 3 Instruct's
    // <|eot_id|>); generation stops on either, as Transformers' generate() does.
    const genPath = path.join(src.dir, 'generation_config.json');
    if (await isFile(genPath)) {
      const gen = (await readJson(genPath, ModelConfigError)) as { eos_token_id?: unknown } | null;
      const extra = parseEosTokenIds(gen?.eos_token_id, config.vocabSize, genPath);
      config = { ...config, eosTokenIds: [...new Set([...config.eosTokenIds, ...extra])] };
    }
    const bound = bindCheckpoint(config, await openCheckpoint(src.dir));
    ckpt = new Map(bound.map((b) => [b.spec.name, b.tensor]));
    // A directory of weights alone is a model; tokenizer.json, when present, comes with it.
    if (await isFile(path.join(src.dir, 'tokenizer.json'))) tokenizer = await Tokenizer.fromDir(src.dir);
  } else {
    if (!Number.isSafeInteger(src.dummySeed) || src.dummySeed < 0) throw new RangeError(`loadModel: dummySeed = ${src.dummySeed} must be an integer in [0, 2^53)`);
    seed = src.dummySeed;
    config = typeof src.config === 'object' && src.config !== null && 'family' in src.config ? (src.config as ModelConfig) : parseModelConfig(src.config);
  }
  const be = typeof src.backend === 'string' ? createBackend({ backend: src.backend }) : src.backend;
  if (!(be instanceof Backend)) throw new TypeError("loadModel: backend must be a Backend, 'cpu' or 'cuda'");
  const dtype = opts.dtype ?? config.torchDtype;
  const built = await buildWeights(be, config, dtype, ckpt, seed, opts.signal);
  try {
    const runner = createModelRunner(be, { config: runnerConfig(config), weights: built.weights });
    return new Model(be, config, dtype, runner, built.tensors, tokenizer);
  } catch (err) {
    for (const t of built.tensors) t.release();
    throw err;
  }
}

async function readJson(p: string, E: new (msg: string, opts?: ErrorOptions) => Error): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (err) {
    throw new E(`${p}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new E(`${p}: is not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

function runnerConfig(c: ModelConfig) {
  return {
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    ...(c.ropeScaling ? { ropeScaling: c.ropeScaling } : {}),
  };
}

// Native tensors and which HF weights fill them at which element offset. q/k/v fuse into
// qkv and gate/up into gateUp (row blocks of one [out][in] matrix), as the runner takes them.
interface Slot {
  key: string;
  dtype: DType;
  numel: number;
  parts: { spec: WeightSpec; offset: number }[];
}

function layout(c: ModelConfig, dtype: DType): Slot[] {
  const specs = expectedWeights(c);
  const slots = new Map<string, Slot>();
  const FUSED: Partial<Record<WeightRole, string>> = { q: 'qkv', k: 'qkv', v: 'qkv', qBias: 'qkvBias', kBias: 'qkvBias', vBias: 'qkvBias', gate: 'gateUp', up: 'gateUp' };
  const FP32: WeightRole[] = ['inputNorm', 'postNorm', 'finalNorm', 'qBias', 'kBias', 'vBias'];
  for (const spec of specs) {
    const name = FUSED[spec.role] ?? spec.role;
    const key = spec.layer === null ? name : `layers.${spec.layer}.${name}`;
    const numel = spec.shape.reduce((a, b) => a * b, 1);
    let slot = slots.get(key);
    if (!slot) slots.set(key, (slot = { key, dtype: FP32.includes(spec.role) ? 'fp32' : dtype, numel: 0, parts: [] }));
    slot.parts.push({ spec, offset: slot.numel });
    slot.numel += numel;
  }
  return [...slots.values()];
}

const SRC_DTYPE = { F32: 'fp32', F16: 'fp16', BF16: 'bf16' } as const;

// Seeds per native tensor: the model seed and the tensor's key, mixed (FNV-1a then a
// 53-bit fold), so tensors are independent and the same seed builds the same model.
function tensorSeed(seed: number, key: string): number {
  let h = 0xcbf29ce484222325n;
  for (const ch of `${seed}:${key}`) h = ((h ^ BigInt(ch.charCodeAt(0))) * 0x100000001b3n) & ((1n << 64n) - 1n);
  return Number(h >> 11n);
}

async function buildWeights(
  be: Backend,
  c: ModelConfig,
  dtype: DType,
  ckpt: Map<string, TensorInfo> | null,
  seed: number,
  signal: AbortSignal | undefined,
): Promise<{ weights: RunnerWeights; tensors: Tensor[] }> {
  const tensors: Tensor[] = [];
  const byKey = new Map<string, Tensor>();
  // Every load and fill is issued at once: they run in order on the native side (file loads
  // on the loader thread, fills on the compute queue) while JS only waits for the last.
  const pending: Promise<unknown>[] = [];
  try {
    for (const slot of layout(c, dtype)) {
      signal?.throwIfAborted();
      const t = be.tensor({ dtype: slot.dtype, shape: [slot.numel] });
      tensors.push(t);
      byKey.set(slot.key, t);
      if (ckpt) {
        for (const part of slot.parts) {
          const info = ckpt.get(part.spec.name)!;
          const numel = part.spec.shape.reduce((a, b) => a * b, 1);
          pending.push(ops.loadTensor(be, { tensor: t, path: info.file, fileOffset: info.offset, numel, srcDtype: SRC_DTYPE[info.dtype as 'F32' | 'F16' | 'BF16'], dstOffset: part.offset }));
        }
      } else {
        // Every part of a fused tensor has the same fan-in, so one range fills it.
        const { centre, half } = dummyRange(slot.parts[0].spec, c);
        pending.push(ops.fillUniform(be, { tensor: t, low: centre - half, high: centre + half, seed: tensorSeed(seed, slot.key) }));
      }
    }
    await Promise.all(pending);
    signal?.throwIfAborted();
  } catch (err) {
    // Let the issued ops finish first, so the memory is back when this rejects.
    await Promise.allSettled(pending);
    for (const t of tensors) t.release();
    throw err;
  }
  const get = (k: string) => byKey.get(k)!;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `layers.${l}.`;
    layers.push({
      inputNorm: get(`${p}inputNorm`),
      qkv: get(`${p}qkv`),
      ...(c.qkvBias ? { qkvBias: get(`${p}qkvBias`) } : {}),
      o: get(`${p}o`),
      postNorm: get(`${p}postNorm`),
      gateUp: get(`${p}gateUp`),
      down: get(`${p}down`),
    });
  }
  return {
    weights: { embed: get('embed'), finalNorm: get('finalNorm'), ...(c.tieWordEmbeddings ? {} : { lmHead: get('lmHead') }), layers },
    tensors,
  };
}


async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
