// The model's native ops beside attention (see docs/model-native-api.md): GEMM over HF
// [out][in] weights, RMSNorm (optionally with the residual add fused), RoPE, SiLU-mul,
// embedding gather, add, final norm + logits for chosen rows, sampling, seeded uniform
// fill (dummy weights) and reading tensor data from a file. Each runs on the backend's
// compute queue (loadTensor on its own loader thread) and returns a Work, like the KV ops
// in lib/backend.ts: arguments are checked and copied at the call, and `waitFor` orders an
// op after Works of other queues.
//
// Activations are fp32 tensors. Read-only tensor arguments may also be typed arrays
// (copied into a temporary tensor at the call); outputs must be Tensors.
import { Tensor, Work, nativeWaits, work, type Backend, type CpuIsa, type TensorInput, type WaitList } from '../backend.js';
import { type DType } from './dtype.js';
import { native, type CublasInfo, type NativeEvent, type NativeOpsInfo, type NativeTensor } from '../native.js';

export type { CublasInfo } from '../native.js';

export type OpsInfo = NativeOpsInfo;

export interface RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** Per-row sampling parameters; an omitted array means the default for every row. */
export interface SamplingParams {
  /** 0 (default) = greedy (argmax, lowest id on ties). */
  temperature?: Float32Array;
  /** 0 (default) = off. */
  topK?: Int32Array;
  /** 1 (default) = off; in (0, 1]. */
  topP?: Float32Array;
  /** Integers in [0, 2^53); default 0. */
  seed?: Float64Array;
  /** The generated-token index of the row's request (>= 0): the draw is keyed by (seed, counter). */
  counter?: Int32Array;
}

export interface SampleResult {
  tokenIds: Int32Array;
  /** Log-softmax of the raw logits (temperature 1, unfiltered) at the chosen id. */
  logprobs: Float32Array;
}

interface Common {
  waitFor?: WaitList;
}

export interface GemmArgs extends Common {
  /** fp32 [m][k] */
  a: TensorInput;
  /** [n][k] fp32 / fp16 / bf16 (HF nn.Linear layout) */
  w: Tensor;
  /** fp32 [n] */
  bias?: TensorInput;
  /** fp32 [m][n] */
  out: Tensor;
  m: number;
  n: number;
  k: number;
  /** cpu only, for benchmarks: force kvcake's own kernels or OpenBLAS for this call (default: the backend's path). */
  impl?: 'auto' | 'own' | 'openblas';
}

export interface RmsNormArgs extends Common {
  x: TensorInput;
  weight: TensorInput;
  /** May be the same Tensor as x. */
  out: Tensor;
  /** With it: residual += x, then out = rmsnorm(residual) * weight. */
  residual?: Tensor;
  rows: number;
  dim: number;
  /** Default 1e-6. */
  eps?: number;
}

export interface RopeArgs extends Common {
  /** fp32 [tokens][numHeads][headDim], rotated in place */
  q: Tensor;
  /** fp32 [tokens][numKvHeads][headDim], rotated in place */
  k?: Tensor;
  positions: Int32Array;
  numHeads: number;
  numKvHeads?: number;
  headDim: number;
  theta: number;
  scaling?: RopeScaling;
}

export interface SiluMulArgs extends Common {
  /** fp32 [rows][2*dim]: gate, then up */
  x: TensorInput;
  /** fp32 [rows][dim] */
  out: Tensor;
  rows: number;
  dim: number;
}

export interface EmbedArgs extends Common {
  /** [vocab][hidden] fp32 / fp16 / bf16 */
  table: Tensor;
  ids: Int32Array;
  /** fp32 [ids.length][hidden] */
  out: Tensor;
  vocab: number;
  hidden: number;
}

export interface AddArgs extends Common {
  a: TensorInput;
  b: TensorInput;
  out: Tensor;
  n: number;
}

export interface LogitsArgs extends Common {
  /** fp32 [numTokens][hiddenSize] */
  hidden: TensorInput;
  /** token indices whose logits are wanted */
  rows: Int32Array;
  /** fp32 [hiddenSize], the final RMSNorm weight */
  norm: TensorInput;
  /** [vocab][hiddenSize] */
  lmHead: Tensor;
  /** fp32 [rows.length][vocab] */
  out: Tensor;
  numTokens: number;
  hiddenSize: number;
  vocab: number;
  eps?: number;
}

export interface SampleArgs extends Common {
  /** fp32 [rows][vocab] */
  logits: TensorInput;
  rows: number;
  vocab: number;
  params?: SamplingParams;
}

export interface FillUniformArgs extends Common {
  tensor: Tensor;
  low: number;
  high: number;
  /** Integer in [0, 2^53). */
  seed: number;
}

export interface LoadTensorArgs extends Common {
  tensor: Tensor;
  path: string;
  /** Byte offset of the first element in the file. */
  fileOffset: number;
  /** Elements to read. */
  numel: number;
  /** dtype of the elements in the file; converted to the tensor's dtype. */
  srcDtype: DType;
  /** First element of the tensor to write (default 0). */
  dstOffset?: number;
}

type Inputs = Record<string, TensorInput | undefined>;

function call<T = void>(
  be: Backend,
  name: string,
  args: object & Common,
  inputs: Inputs,
  issue: (a: Record<string, unknown>, waits: NativeEvent[] | undefined) => NativeEvent,
  map?: (v: unknown) => T,
): Work<T> {
  if (typeof args !== 'object' || args === null) throw new TypeError(`${name}: arguments must be an object`);
  const temps: Tensor[] = [];
  try {
    const resolved: Record<string, unknown> = { ...args };
    delete resolved.waitFor;
    for (const [key, x] of Object.entries(inputs)) resolved[key] = resolve(be, x, `${name}: ${key}`, temps);
    for (const [key, v] of Object.entries(resolved)) if (v instanceof Tensor) resolved[key] = v.handle;
    return work<T>(issue(resolved, nativeWaits(args.waitFor, `${name}: waitFor`)), map);
  } finally {
    for (const t of temps) t.release();
  }
}

function resolve(be: Backend, x: TensorInput | undefined, name: string, temps: Tensor[]): NativeTensor | undefined {
  if (x === undefined || x === null) return undefined;
  if (x instanceof Tensor) return x.handle;
  if (x instanceof Float32Array) {
    if (x.length === 0) throw new RangeError(`${name} is empty`);
    const t = be.tensorFrom(x, 'fp32');
    temps.push(t);
    return t.handle;
  }
  throw new TypeError(`${name} must be a Tensor or a Float32Array`);
}

const m = () => native().modelOps;

export const ops = {
  /** out[m][n] = a[m][k] . w[n][k]^T (+ bias[n]), fp32 accumulation. */
  gemm(be: Backend, a: GemmArgs): Work {
    return call(be, 'gemm', a, { a: a.a, bias: a.bias }, (x, w) => m().gemm(be.handle, x, w));
  },
  rmsnorm(be: Backend, a: RmsNormArgs): Work {
    return call(be, 'rmsnorm', a, { x: a.x, weight: a.weight }, (x, w) => m().rmsnorm(be.handle, x, w));
  },
  /** In place on q (and k), HF rotate_half convention. */
  rope(be: Backend, a: RopeArgs): Work {
    return call(be, 'rope', a, {}, (x, w) => m().rope(be.handle, x, w));
  },
  siluMul(be: Backend, a: SiluMulArgs): Work {
    return call(be, 'siluMul', a, { x: a.x }, (x, w) => m().siluMul(be.handle, x, w));
  },
  embed(be: Backend, a: EmbedArgs): Work {
    return call(be, 'embed', a, {}, (x, w) => m().embed(be.handle, x, w));
  },
  add(be: Backend, a: AddArgs): Work {
    return call(be, 'add', a, { a: a.a, b: a.b }, (x, w) => m().add(be.handle, x, w));
  },
  /** Final RMSNorm of the chosen rows, then lm_head. */
  logits(be: Backend, a: LogitsArgs): Work {
    return call(be, 'logits', a, { hidden: a.hidden, norm: a.norm }, (x, w) => m().logits(be.handle, x, w));
  },
  sample(be: Backend, a: SampleArgs): Work<SampleResult> {
    return call(be, 'sample', a, { logits: a.logits }, (x, w) => m().sample(be.handle, x, w), (v) => v as SampleResult);
  },
  /** Element i = low + (high - low) * u(seed, i), rounded to the tensor's dtype; the same on every backend. */
  fillUniform(be: Backend, a: FillUniformArgs): Work {
    return call(be, 'fillUniform', a, {}, (x, w) => m().fillUniform(be.handle, x, w));
  },
  /** Reads numel elements of srcDtype at fileOffset into tensor[dstOffset..], converting; bounded chunks, native thread. */
  loadTensor(be: Backend, a: LoadTensorArgs): Work {
    return call(be, 'loadTensor', a, {}, (x, w) => m().loadTensor(be.handle, x, w));
  },
  /** Which kernel paths this backend's model ops run. */
  info(be: Backend): OpsInfo {
    return m().info(be.handle);
  },
  /** Whether cuBLAS loads in this process (searched once, no GPU needed), where from, and every place tried. */
  cublasInfo(): CublasInfo {
    return m().cublasInfo();
  },
  /**
   * Measured FMA peak of the CPU thread pool in GFLOP/s (an FMA-only loop on every thread at
   * the level the GEMM runs under the ceiling `isa`, default KVCAKE_CPU_ISA, else the best;
   * blocks for `seconds`). For benchmark ratios.
   */
  fmaPeak(isa?: CpuIsa, seconds = 0.2): number {
    return m().fmaPeak(isa, seconds);
  },
};
