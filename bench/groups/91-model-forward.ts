// Whole-model throughput of dummy-weight models on the native forward runner: prefill
// tokens/s (one prompt in one step) and decode tokens/s (one token per sequence per step,
// batch 1 and 8). Beside each, what the step moved or computed: decode streams every
// weight once per step, so weight bytes / step time is set against a device -> device copy
// measured in the same run (bytes copied per second, as the attention group counts it);
// prefill is 2 FLOPs per linear parameter per token.
// Default suite: a small Llama-shaped model (a few seconds). --full: adds Llama-3.2-1B's
// shape (16 layers, hidden 2048, GQA 32/8, vocab 128256, bf16).
import type { BenchContext, BenchGroup, Headline } from '../harness.js';
import { createBackend, type Backend, type BackendKind } from '../../lib/index.js';
import { ops } from '../../lib/backend/ops.js';
import { linearParams, parseModelConfig, type ModelConfig } from '../../lib/model/config.js';
import { loadModel } from '../../lib/model/model.js';
import { ContiguousKv, type StepItem } from '../../lib/model/contiguous-kv.js';

const llama = (o: Record<string, unknown>) => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  torch_dtype: 'bfloat16',
  ...o,
});

const SHAPES: { name: string; full: boolean; config: ModelConfig; prompt: number; decodeSteps: number }[] = [
  {
    name: 'small (4 x 512, GQA 8/2, vocab 8192)',
    full: false,
    config: parseModelConfig(llama({ hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 8192, tie_word_embeddings: false })),
    prompt: 256,
    decodeSteps: 32,
  },
  {
    name: 'Llama-3.2-1B shape',
    full: true,
    config: parseModelConfig(
      llama({ hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, tie_word_embeddings: true }),
    ),
    prompt: 256,
    decodeSteps: 8,
  },
];

// Median of `reps` runs after one warmup; a run slower than 2 s is measured once more only.
async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  const w0 = performance.now();
  await fn();
  if (performance.now() - w0 > 2000) reps = 1;
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

// Bytes copied per second by a device -> device copyBlocks of 128 MiB in 1 MiB blocks.
async function copyBandwidth(be: Backend): Promise<number> {
  const geo = { tier: 'device' as const, numBlocks: 128, numKvHeads: 8, headDim: 128, blockSize: 256, dtype: 'bf16' as const };
  const a = be.createPool(geo);
  const b = be.createPool(geo);
  try {
    const pairs = new Int32Array(2 * geo.numBlocks);
    for (let i = 0; i < geo.numBlocks; i++) pairs[2 * i] = pairs[2 * i + 1] = i;
    await a.write(new Uint16Array(geo.numBlocks * a.layout.blockStride).fill(0x3f80));
    const t = await timeIt(() => be.copyBlocks(a, b, pairs), 8);
    return a.bytes / t / 1e9;
  } finally {
    a.release();
    b.release();
  }
}

export const group: BenchGroup = {
  name: 'model-forward',
  title: 'Model forward: prefill and decode tokens/s of dummy-weight models',
  estimate: '20 s',
  async run(ctx: BenchContext): Promise<Headline[]> {
    const be = createBackend({ backend: ctx.backend as BackendKind });
    const info = ops.info(be);
    const copyGBs = await copyBandwidth(be);
    const rows: Record<string, unknown>[] = [];
    const heads: Headline[] = [];
    for (const shape of SHAPES.filter((s) => ctx.full || !s.full)) {
      const c = shape.config;
      ctx.progress(`${shape.name}: building dummy weights`);
      await using model = await loadModel({ backend: be, config: c, dummySeed: 1 }, { dtype: 'bf16' });
      const batch = 8;
      const maxLen = shape.prompt + shape.decodeSteps * 4 + 4;
      const kv = new ContiguousKv(be, c, { maxSeqs: batch, maxLen, blockSize: 16, dtype: 'bf16' });
      try {
        const prompt = Int32Array.from({ length: shape.prompt }, (_, i) => (i * 7919) % c.vocabSize);
        ctx.progress(`${shape.name}: prefill ${shape.prompt} tokens`);
        const tPrefill = await timeIt(() => model.forward(kv.step([{ seq: 0, tokens: prompt, start: 0, logits: 'last' }])).work, ctx.full ? 3 : 2);
        // Fill every sequence's cache with the prompt, then time decode steps after it.
        for (let s = 1; s < batch; s++) await model.forward(kv.step([{ seq: s, tokens: prompt, start: 0, logits: 'last' }])).work;
        for (const b of [1, batch]) {
          ctx.progress(`${shape.name}: decode batch ${b}`);
          let pos = shape.prompt;
          const step = () => {
            const items: StepItem[] = Array.from({ length: b }, (_, s) => ({ seq: s, tokens: [1], start: pos, logits: 'last' as const }));
            pos = Math.min(pos + 1, maxLen - 1);
            return model.forward(kv.step(items)).work;
          };
          const tDecode = await timeIt(step, shape.decodeSteps);
          rows.push({
            model: shape.name,
            phase: `decode, batch ${b}`,
            tokens: b,
            'step ms': tDecode * 1e3,
            'tokens/s': b / tDecode,
            'weight GB/s': model.weightBytes / tDecode / 1e9,
            'vs copy': model.weightBytes / tDecode / 1e9 / copyGBs,
          });
          if (b === 1) heads.push({ metric: `decode tokens/s, batch 1, ${shape.name} (${be.name})`, value: (1 / tDecode).toFixed(1) });
        }
        rows.push({
          model: shape.name,
          phase: 'prefill',
          tokens: shape.prompt,
          'step ms': tPrefill * 1e3,
          'tokens/s': shape.prompt / tPrefill,
          'GFLOP/s': (2 * linearParams(c) * shape.prompt) / tPrefill / 1e9,
        });
        heads.push({ metric: `prefill tokens/s, ${shape.prompt}-token prompt, ${shape.name} (${be.name})`, value: (shape.prompt / tPrefill).toFixed(0) });
      } finally {
        kv.release();
      }
    }
    ctx.table(`Dummy bf16 models on ${be.name} (${be.deviceName}; gemm: ${info.gemm}${info.isa ? `, isa ${info.isa}` : ''}; copy ${copyGBs.toFixed(1)} GB/s)`, rows);
    ctx.record('ops', info);
    ctx.record('copyGBs', copyGBs);
    return heads;
  },
};
