// The native forward runner (see docs/model-native-api.md): a Llama-family decoder over
// the native kernels, one N-API call and one settled Work per step. Per layer it waits
// natively on `waitBeforeLayer[l]` before touching that layer's KV blocks, and returns an
// `appended[l]` Work that a later copyBlocks can wait on (offload what layer l wrote while
// later layers compute).
import { KVPool, Tensor, Work, nativeWaits, work, type Backend, type WaitList } from '../backend.js';
import { native, type NativeEvent, type NativeModelRunner } from '../native.js';
import type { RopeScaling, SamplingParams } from './ops.js';

export interface RunnerConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
}

export interface LayerWeights {
  /** fp32 [hidden] */
  inputNorm: Tensor;
  /** [(numHeads + 2 numKvHeads) headDim][hidden]: q_proj rows, then k_proj, then v_proj */
  qkv: Tensor;
  /** fp32 [(numHeads + 2 numKvHeads) headDim] (Qwen2) */
  qkvBias?: Tensor;
  /** [hidden][numHeads headDim] */
  o: Tensor;
  /** fp32 [hidden] */
  postNorm: Tensor;
  /** [2 intermediate][hidden]: gate_proj rows, then up_proj */
  gateUp: Tensor;
  /** [hidden][intermediate] */
  down: Tensor;
}

export interface RunnerWeights {
  /** [vocab][hidden] */
  embed: Tensor;
  /** fp32 [hidden] */
  finalNorm: Tensor;
  /** [vocab][hidden]; omitted = tied to embed */
  lmHead?: Tensor;
  layers: LayerWeights[];
}

export interface ForwardStep {
  /** Device-tier pool whose numKvHeads and headDim match the config. */
  pool: KVPool;
  /** [T] */
  tokens: Int32Array;
  /** [T]; token i of item b must sit at contextLens[b] - qLen_b + i. */
  positions: Int32Array;
  /** [B+1] item b owns tokens qStartLoc[b] .. qStartLoc[b+1]-1 (qLen 1: decode kernel; > 1: prefill kernel). */
  qStartLoc: Int32Array;
  /** [B] tokens in cache for each item after this step's append. */
  contextLens: Int32Array;
  tableStride: number;
  /** [L][B][tableStride] pool block ids per layer. */
  blockTables: Int32Array;
  /** [L][T] pool slot per token per layer, -1 = do not write; must agree with blockTables. */
  slotMapping: Int32Array;
  /** [R] token indices whose logits are computed and sampled. */
  logitsRows: Int32Array;
  sampling?: SamplingParams;
  /** Also return the [R][vocab] logits. */
  returnLogits?: boolean;
  /** Before the step starts. */
  waitFor?: WaitList;
  /** [L] layer l's append and attention wait natively on these. */
  waitBeforeLayer?: (WaitList | undefined)[];
  /** Copies the step orders against its layers (see LayerCopy). */
  copies?: LayerCopy[];
}

/**
 * A block copy ordered against the step's layers: issued once layer `afterLayer`'s attention
 * is done, so its blocks are no longer read (default: at the step's start), and once the
 * copies of this step it names in `after` are done; layer `beforeLayer`'s append and attention wait for it. So a copy can
 * both follow one layer and gate a later one: an offload out of a staging buffer that the
 * next layer reuses, or a reload into it that must wait for that offload.
 */
export interface LayerCopy {
  src: KVPool;
  dst: KVPool;
  /** [n][2] (srcBlock, dstBlock), destinations distinct. */
  pairs: Int32Array;
  afterLayer?: number;
  beforeLayer?: number;
  /** Indices of earlier copies of this step. */
  after?: readonly number[];
  /** Earlier work it waits for as well. */
  waitFor?: WaitList;
}

export interface ForwardResult {
  tokenIds: Int32Array;
  logprobs: Float32Array;
  logits?: Float32Array;
}

export interface ForwardWork {
  /** Settles when the whole step is done (one Promise per step). */
  work: Work<ForwardResult>;
  /** [L] layer l's K/V are in the pool. Failures reject these too; they are pre-handled so an ignored one never crashes the process. */
  appended: Work[];
  /** One per step copy, settled when it has run (pre-handled like `appended`). */
  copies: Work[];
}

function handle(t: Tensor | undefined, name: string): unknown {
  if (t === undefined) return undefined;
  if (!(t instanceof Tensor)) throw new TypeError(`createModelRunner: ${name} must be a Tensor`);
  return t.handle;
}

export class ModelRunner {
  /** @internal */
  constructor(
    /** @internal */ readonly handle: NativeModelRunner,
    readonly backend: Backend,
    readonly config: Readonly<RunnerConfig>,
  ) {}

  forward(step: ForwardStep): ForwardWork {
    if (typeof step !== 'object' || step === null) throw new TypeError('forward: step must be an object');
    if (!(step.pool instanceof KVPool)) throw new TypeError('forward: pool must be a KVPool');
    const waits = step.waitBeforeLayer?.map((l, i) => nativeWaits(l ?? [], `forward: waitBeforeLayer[${i}]`));
    if (step.copies !== undefined && !Array.isArray(step.copies)) throw new TypeError('forward: copies must be an array');
    const copies = step.copies?.map((c, i) => {
      if (typeof c !== 'object' || c === null) throw new TypeError(`forward: copies[${i}] must be an object`);
      if (!(c.src instanceof KVPool)) throw new TypeError(`forward: copies[${i}].src must be a KVPool`);
      if (!(c.dst instanceof KVPool)) throw new TypeError(`forward: copies[${i}].dst must be a KVPool`);
      return { ...c, src: c.src.handle, dst: c.dst.handle, after: c.after === undefined ? undefined : Int32Array.from(c.after), waitFor: nativeWaits(c.waitFor, `forward: copies[${i}].waitFor`) };
    });
    const { waitFor, ...rest } = step;
    const r = this.handle.forward({ ...rest, pool: step.pool.handle, waitBeforeLayer: waits, copies }, nativeWaits(waitFor, 'forward: waitFor'));
    const handled = (ev: NativeEvent) => {
      const w = work<void>(ev);
      w.catch(() => {});
      return w;
    };
    return { work: work<ForwardResult>(r.work, (v) => v as ForwardResult), appended: r.appended.map(handled), copies: r.copies.map(handled) };
  }

  get released(): boolean {
    return this.handle.released;
  }

  /** Drops the runner's references to its weights and workspace; steps in flight keep what they use. */
  release(): void {
    this.handle.release();
  }
}

/** A forward runner over `weights` (Tensors of this backend; see LayerWeights for layouts). */
export function createModelRunner(be: Backend, o: { config: RunnerConfig; weights: RunnerWeights }): ModelRunner {
  if (typeof o !== 'object' || o === null) throw new TypeError('createModelRunner: options must be an object');
  const w = o.weights;
  if (typeof w !== 'object' || w === null) throw new TypeError('createModelRunner: weights must be an object');
  if (!Array.isArray(w.layers)) throw new TypeError('createModelRunner: weights.layers must be an array');
  const weights = {
    embed: handle(w.embed, 'weights.embed'),
    finalNorm: handle(w.finalNorm, 'weights.finalNorm'),
    lmHead: handle(w.lmHead, 'weights.lmHead'),
    layers: w.layers.map((l, i) => {
      const p = `weights.layers[${i}].`;
      return {
        inputNorm: handle(l?.inputNorm, p + 'inputNorm'),
        qkv: handle(l?.qkv, p + 'qkv'),
        qkvBias: handle(l?.qkvBias, p + 'qkvBias'),
        o: handle(l?.o, p + 'o'),
        postNorm: handle(l?.postNorm, p + 'postNorm'),
        gateUp: handle(l?.gateUp, p + 'gateUp'),
        down: handle(l?.down, p + 'down'),
      };
    }),
  };
  const Runner = native().ModelRunner;
  return new ModelRunner(new Runner(be.handle, o.config, weights), be, { ...o.config });
}
