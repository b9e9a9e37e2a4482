// The public native API: a backend (cpu or cuda), its KV pools and tensors, and the ops.
//
// Ordering rule (the CUDA stream model, on both backends):
//   - A backend has three in-order queues: compute (appendKV, decode, prefill, tensor
//     read/write, device->device copies), h2d (host->device copies: loads) and d2h
//     (device->host and host->host copies: offloads).
//   - Ops on one queue run in issue order. So `appendKV` then `decode` need no waiting, and
//     `out.read()` after `decode` sees the result.
//   - Across queues nothing is ordered unless you say so: pass the earlier op's Work in
//     `waitFor` (the wait happens on the native side; the JS thread does not block), or
//     `await` it before issuing.
//   - Every op returns a Work, a Promise that settles when the op has run. Await it or
//     attach a handler: a failed op rejects its Work, and an op that waits for a failed op
//     is skipped and rejects too.
//   - Arguments are validated and copied when the op is issued: block tables, lengths,
//     slot mappings and typed-array inputs may be reused at once. Releasing a pool or a
//     tensor while ops on it are in flight is safe; its memory is freed when the last of
//     them finishes.
//
// Inputs q, k and v may be Tensors or typed arrays (Float32Array for fp32, Uint16Array
// of bit patterns for fp16/bf16); a typed array is copied into a temporary tensor at call
// time. `out` must be a Tensor.
import { type DType, decodeValues } from './backend/dtype.js';
import { show } from './util/show.js';
import { native, nativePath, type CudaInfo, type NativeBackend, type NativeEvent, type NativePool, type NativeTensor } from './native.js';

export type { DType } from './backend/dtype.js';
export type { CudaInfo } from './native.js';
export type Tier = 'device' | 'host';
export type BackendKind = 'cpu' | 'cuda' | 'auto';
/** Storage of tensor data in JS: Float32Array for fp32, Uint16Array (bit patterns) for fp16/bf16. */
export type TensorData = Float32Array | Uint16Array;

export interface BackendOptions {
  /** 'auto' (default) picks cuda when a CUDA device is usable, else cpu; never falls back silently from 'cuda'. */
  backend?: BackendKind;
  /** CUDA device index (default 0). */
  device?: number;
  /** CPU backend: capacity of the device tier in bytes (default KVCAKE_CPU_DEVICE_BYTES, else unlimited). */
  deviceCapacityBytes?: number;
  /**
   * CPU backend: the highest instruction-set level its kernels may use (default
   * KVCAKE_CPU_ISA, else the best this CPU supports). A level the CPU cannot run throws.
   */
  cpuIsa?: CpuIsa;
}

/** CPU instruction-set levels, lowest first; each implies the ones before it. */
export type CpuIsa = 'scalar' | 'avx2' | 'avx512' | 'avx512bf16' | 'avx512fp16' | 'auto';

/** What a backend runs. */
export interface BackendInfo {
  backend: 'cpu' | 'cuda';
  device: string;
  /** CPU: the ISA level the kernels may use (each kernel runs its best path at or below it). */
  isa?: Exclude<CpuIsa, 'auto'>;
  /** CPU: every level this CPU supports, lowest first. */
  supportedIsas?: Exclude<CpuIsa, 'auto'>[];
  /** CPU: the instruction-set features CPUID and the OS report. */
  cpuFeatures?: string[];
  /** CPU: threads a kernel runs on. */
  threads?: number;
  /** CPU: the level each kernel family runs at, e.g. { 'decode.fp16': 'avx512' }. */
  kernels?: Record<string, string>;
}

export interface PoolOptions {
  tier: Tier;
  numBlocks: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  dtype: DType;
}

/**
 * Geometry of a pool. One layer-block holds K and V of `blockSize` tokens of one layer of
 * one sequence, laid out [2][numKvHeads][blockSize][headDim] (K then V; each KV head's rows
 * contiguous). Strides are in elements; a slot is blockId * blockSize + offsetInBlock.
 */
export interface KVLayout {
  numBlocks: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  dtype: DType;
  headStride: number;
  kvStride: number;
  blockStride: number;
  blockBytes: number;
}

/** Anything a later op can wait for. */
export type WaitList = readonly Work<unknown>[];

const events = new WeakMap<object, NativeEvent>();

/**
 * A Promise for one native op's completion, also accepted in `waitFor` of later ops.
 * `then` returns plain Promises.
 */
export class Work<T = void> extends Promise<T> {
  static override get [Symbol.species]() {
    return Promise;
  }
  /** Whether the op has finished (without waiting). */
  get done(): boolean {
    return events.get(this)?.ready() ?? true;
  }
}

/** @internal Wraps a native event as a Work (also used by lib/backend/ops.ts and model.ts). */
export function work<T>(ev: NativeEvent, map: (v: unknown) => T = () => undefined as T): Work<T> {
  const w = new Work<T>((resolve, reject) => {
    ev.promise.then((v) => resolve(map(v)), reject);
  });
  events.set(w, ev);
  return w;
}

/** An options bag: undefined means none; anything but a plain object is a TypeError naming it. */
function options<T extends object>(o: T | undefined, name: string): Partial<T> {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TypeError(`${name} must be an object, got ${show(o)}`);
  return o;
}

function poolArg(p: unknown, name: string): KVPool {
  if (!(p instanceof KVPool)) throw new TypeError(`${name} must be a KVPool, got ${show(p)}`);
  return p;
}

/** @internal A native event of another op family (the prefix store's I/O) as a Work, so backend ops can wait for it and it for them. */
export function workFromNative<T>(ev: NativeEvent, map?: (v: unknown) => T): Work<T> {
  return work(ev, map);
}

/** @internal The native events behind a waitFor list (TypeError naming `name` for anything else). */
export function nativeEventsOf(list: WaitList | undefined, name: string): NativeEvent[] | undefined {
  return nativeWaits(list, name);
}

/** @internal */
export function nativeWaits(list: WaitList | undefined, name: string): NativeEvent[] | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) throw new TypeError(`${name} must be an array of Work, got ${show(list)}`);
  return list.map((w, i) => {
    const ev = w instanceof Work ? events.get(w) : undefined;
    if (!ev) throw new TypeError(`${name}[${i}] is not a Work returned by a kvcake op`);
    return ev;
  });
}

export class KVPool {
  /** @internal */
  constructor(
    /** @internal */ readonly handle: NativePool,
    readonly backend: Backend,
  ) {}
  get layout(): KVLayout {
    return this.handle.layout;
  }
  get tier(): Tier {
    return this.handle.tier;
  }
  get numBlocks(): number {
    return this.handle.layout.numBlocks;
  }
  /** Bytes of one layer-block (K and V). */
  get blockBytes(): number {
    return this.handle.blockBytes;
  }
  get bytes(): number {
    return this.handle.bytes;
  }
  get released(): boolean {
    return this.handle.released;
  }
  /**
   * Reads whole layer-blocks [firstBlock, firstBlock + numBlocks) as stored (see KVLayout),
   * as a Float32Array (fp32) or Uint16Array (fp16/bf16 bit patterns). Runs on the compute
   * queue for a device pool and on d2h for a host pool.
   */
  read(opts?: { firstBlock?: number; numBlocks?: number; waitFor?: WaitList }): Work<TensorData> {
    const o = options(opts, 'pool.read: options');
    const first = o.firstBlock ?? 0;
    // The native side checks both (a non-number firstBlock is its error, not a JS one here).
    const count = o.numBlocks ?? (typeof first === 'number' ? this.numBlocks - first : 0);
    const fp32 = this.layout.dtype === 'fp32';
    return work(this.backend.handle.readPool(this.handle, first, count, nativeWaits(o.waitFor, 'pool.read: waitFor')), (buf) =>
      fp32 ? new Float32Array(buf as ArrayBuffer) : new Uint16Array(buf as ArrayBuffer),
    );
  }
  /** Writes whole layer-blocks starting at firstBlock (data copied now); same queues as read. */
  write(data: TensorData, opts?: { firstBlock?: number; waitFor?: WaitList }): Work {
    const o = options(opts, 'pool.write: options');
    return work(this.backend.handle.writePool(this.handle, o.firstBlock ?? 0, data, nativeWaits(o.waitFor, 'pool.write: waitFor')));
  }
  /** Drops this handle; the memory is freed once ops already issued on it finish. */
  release(): void {
    this.handle.release();
  }
}

export class Tensor {
  /** @internal */
  constructor(
    /** @internal */ readonly handle: NativeTensor,
    readonly backend: Backend,
    readonly shape: readonly number[],
  ) {}
  get dtype(): DType {
    return this.handle.dtype;
  }
  get numel(): number {
    return this.handle.numel;
  }
  get bytes(): number {
    return this.handle.bytes;
  }
  get tier(): Tier {
    return this.handle.tier;
  }
  get released(): boolean {
    return this.handle.released;
  }
  /** Uploads `data` (copied now) at element `offset`, on the compute queue. */
  write(data: TensorData, opts?: { offset?: number; waitFor?: WaitList }): Work {
    const o = options(opts, 'write: options');
    return work(this.backend.handle.write(this.handle, data, o.offset ?? 0, nativeWaits(o.waitFor, 'write: waitFor')));
  }
  /** Downloads the tensor on the compute queue, after every compute op issued before. */
  read(opts?: { waitFor?: WaitList }): Work<TensorData> {
    const dtype = this.dtype;
    const o = options(opts, 'read: options');
    return work(this.backend.handle.read(this.handle, nativeWaits(o.waitFor, 'read: waitFor')), (buf) =>
      dtype === 'fp32' ? new Float32Array(buf as ArrayBuffer) : new Uint16Array(buf as ArrayBuffer),
    );
  }
  /** read(), decoded to fp32 values. Bad arguments throw here, before anything is queued. */
  readFloat32(opts?: { waitFor?: WaitList }): Promise<Float32Array> {
    const dtype = this.dtype;
    return this.read(opts).then((data) => decodeValues(data, dtype));
  }
  release(): void {
    this.handle.release();
  }
}

/** A tensor argument: a Tensor, or a typed array copied into a temporary tensor at call time. */
export type TensorInput = Tensor | TensorData;

export interface AppendArgs {
  pool: KVPool;
  /** [numTokens][numKvHeads][headDim] */
  k: TensorInput;
  v: TensorInput;
  /** [numTokens] slot = blockId * blockSize + offsetInBlock; -1 for padding rows. */
  slotMapping: Int32Array;
  waitFor?: WaitList;
}

export interface DecodeArgs {
  pool: KVPool;
  /** [batch][numHeads][headDim] */
  q: TensorInput;
  /** [batch][numHeads][headDim]; a sequence with contextLen 0 gets zeros. */
  out: Tensor;
  /** [batch][tableStride] block ids of this layer; entries past a sequence's last block are ignored. */
  blockTables: Int32Array;
  tableStride: number;
  /** [batch] cached tokens per sequence; batch = contextLens.length. */
  contextLens: Int32Array;
  /** Query heads; a multiple of the pool's numKvHeads (GQA: head h reads KV head h / (numHeads / numKvHeads)). */
  numHeads: number;
  /** Softmax scale; default 1/sqrt(headDim). */
  scale?: number;
  waitFor?: WaitList;
}

export interface PrefillArgs extends Omit<DecodeArgs, 'q' | 'out'> {
  /** [totalQ][numHeads][headDim], totalQ = qStartLoc[batch] */
  q: TensorInput;
  out: Tensor;
  /** [batch + 1] offsets of each sequence's query tokens in q; qStartLoc[0] = 0, non-decreasing.
   *  The chunk's own K/V must be appended first: contextLens[b] counts them, and query i of
   *  sequence b sits at position contextLens[b] - qLen_b + i (causal). */
  qStartLoc: Int32Array;
}

export class Backend {
  /** @internal */
  constructor(
    /** @internal */ readonly handle: NativeBackend,
    /** CUDA device index; 0 on cpu. */
    readonly device: number,
  ) {}

  /** 'cpu' or 'cuda'. */
  get name(): 'cpu' | 'cuda' {
    return this.handle.name;
  }
  /** The GPU's name, or the CPU model and thread count. */
  get deviceName(): string {
    return this.handle.deviceName;
  }
  /** Bytes allocated in a tier and not yet freed. */
  liveBytes(tier: Tier): number {
    return this.handle.liveBytes(tier);
  }

  /** Which backend, device and (on the CPU) instruction-set path every kernel runs. */
  info(): BackendInfo {
    const raw = this.handle.info();
    const out: BackendInfo = { backend: this.name, device: this.deviceName };
    if (raw.isa !== undefined) out.isa = raw.isa as BackendInfo['isa'];
    if (raw.supportedIsas !== undefined) out.supportedIsas = raw.supportedIsas.split(', ') as BackendInfo['supportedIsas'];
    if (raw.cpuFeatures !== undefined) out.cpuFeatures = raw.cpuFeatures === '' ? [] : raw.cpuFeatures.split(' ');
    if (raw.threads !== undefined) out.threads = Number(raw.threads);
    const kernels = Object.entries(raw).filter(([k]) => k.startsWith('kernel.'));
    if (kernels.length > 0) out.kernels = Object.fromEntries(kernels.map(([k, v]) => [k.slice('kernel.'.length), v]));
    return out;
  }

  /**
   * Benchmark reference: reads the listed blocks of `pool` once each, in order, on the
   * compute queue and the kernels' threads (a streaming read of the bytes a decode over
   * those blocks reads). Resolves to the bytes read. CPU backend only.
   */
  referenceRead(pool: KVPool, blocks: Int32Array, opts: { waitFor?: WaitList } = {}): Work<number> {
    if (!(pool instanceof KVPool)) throw new TypeError('referenceRead: pool must be a KVPool');
    return work(this.handle.reference({ kind: 'read', pool: pool.handle, blocks }, nativeWaits(opts.waitFor, 'referenceRead: waitFor')), (v) => v as number);
  }

  /**
   * Benchmark reference: `iterations` rounds of independent FMA chains on every kernel
   * thread at the level the kernels run (the arithmetic peak). Resolves to the flops done.
   * CPU backend only.
   */
  referenceFma(iterations: number, opts: { waitFor?: WaitList } = {}): Work<number> {
    return work(this.handle.reference({ kind: 'fma', iterations }, nativeWaits(opts.waitFor, 'referenceFma: waitFor')), (v) => v as number);
  }

  /** Allocates a KV pool. Contents are undefined until written (appendKV or copyBlocks). */
  createPool(o: PoolOptions): KVPool {
    if (typeof o !== 'object' || o === null) throw new TypeError(`createPool: options must be an object, got ${show(o)}`);
    return new KVPool(this.handle.createPool(o), this);
  }

  /** Allocates a tensor (contents undefined until written). */
  tensor(o: { dtype: DType; shape: readonly number[]; tier?: Tier }): Tensor {
    if (typeof o !== 'object' || o === null) throw new TypeError(`tensor: options must be an object, got ${show(o)}`);
    const shape = checkShape(o.shape, 'tensor: shape');
    return new Tensor(this.handle.createTensor(o.dtype, product(shape), o.tier ?? 'device'), this, shape);
  }

  /** A tensor holding a copy of `data`; the upload is on the compute queue, so later ops see it. */
  tensorFrom(data: TensorData, dtype: DType, shape?: readonly number[]): Tensor {
    if (!(data instanceof Float32Array || data instanceof Uint16Array))
      throw new TypeError(`tensorFrom: data must be a Float32Array (fp32) or Uint16Array (fp16/bf16 bit patterns), got ${show(data)}`);
    const s = shape === undefined ? [data.length] : checkShape(shape, 'tensorFrom: shape');
    if (product(s) !== data.length)
      throw new RangeError(`tensorFrom: shape [${s.join(', ')}] has ${product(s)} elements but data has ${data.length}`);
    const t = new Tensor(this.handle.createTensor(dtype, data.length), this, s);
    try {
      t.write(data).catch(() => {});
    } catch (err) {
      t.release();
      throw err;
    }
    return t;
  }

  /** Writes rows of K and V into pool slots (compute queue). */
  appendKV(a: AppendArgs): Work {
    const temps: Tensor[] = [];
    try {
      const { pool, rows } = this.opArgs(a, 'appendKV');
      const n = a.slotMapping instanceof Int32Array ? a.slotMapping.length : undefined;
      const need = n === undefined ? undefined : { n: n * rows, dims: [n, pool.layout.numKvHeads, pool.layout.headDim] };
      const dtype = pool.layout.dtype;
      const k = this.input(a.k, dtype, 'appendKV: k', temps, need);
      const v = this.input(a.v, dtype, 'appendKV: v', temps, need);
      return work(this.handle.append({ pool: pool.handle, k, v, slotMapping: a.slotMapping }, nativeWaits(a.waitFor, 'appendKV: waitFor')));
    } finally {
      for (const t of temps) t.release();
    }
  }

  /** Decode attention over paged KV (compute queue). */
  decode(a: DecodeArgs): Work {
    const temps: Tensor[] = [];
    try {
      const { pool } = this.opArgs(a, 'decode');
      const rows = a.contextLens instanceof Int32Array ? a.contextLens.length : undefined;
      const q = this.input(a.q, pool.layout.dtype, 'decode: q', temps, queryShape(rows, a.numHeads, pool.layout.headDim));
      return work(this.handle.decode({ ...a, pool: pool.handle, q, out: this.outTensor(a.out, 'decode') }, nativeWaits(a.waitFor, 'decode: waitFor')));
    } finally {
      for (const t of temps) t.release();
    }
  }

  /** Causal prefill / chunked-prefill attention over paged KV (compute queue). */
  prefill(a: PrefillArgs): Work {
    const temps: Tensor[] = [];
    try {
      const { pool } = this.opArgs(a, 'prefill');
      const starts = a.qStartLoc;
      const rows = starts instanceof Int32Array && starts.length > 0 ? starts[starts.length - 1] : undefined;
      const q = this.input(a.q, pool.layout.dtype, 'prefill: q', temps, queryShape(rows, a.numHeads, pool.layout.headDim));
      return work(this.handle.prefill({ ...a, pool: pool.handle, q, out: this.outTensor(a.out, 'prefill') }, nativeWaits(a.waitFor, 'prefill: waitFor')));
    } finally {
      for (const t of temps) t.release();
    }
  }

  /**
   * Copies whole layer-blocks between pools of the same geometry: pairs is [n][2]
   * (srcBlock, dstBlock), destinations distinct. Runs on h2d for host->device, compute for
   * device->device, d2h otherwise.
   */
  copyBlocks(src: KVPool, dst: KVPool, pairs: Int32Array, opts?: { waitFor?: WaitList }): Work {
    poolArg(src, 'copyBlocks: src');
    poolArg(dst, 'copyBlocks: dst');
    const o = options(opts, 'copyBlocks: options');
    return work(this.handle.copyBlocks(src.handle, dst.handle, pairs, nativeWaits(o.waitFor, 'copyBlocks: waitFor')));
  }

  private opArgs(a: { pool: KVPool }, op: string): { pool: KVPool; rows: number } {
    if (typeof a !== 'object' || a === null) throw new TypeError(`${op}: arguments must be an object, got ${show(a)}`);
    const pool = poolArg(a.pool, `${op}: pool`);
    return { pool, rows: pool.layout.numKvHeads * pool.layout.headDim };
  }

  // A typed-array input must hold exactly its shape (a longer one is a caller's shape
  // bug); a Tensor may hold more, the op reads its leading elements. A shorter array is
  // left to the native check, which names the shape it needs.
  private input(x: TensorInput, dtype: DType, name: string, temps: Tensor[], need?: { n: number; dims: number[] }): NativeTensor {
    if (x instanceof Tensor) return x.handle;
    if (x instanceof Float32Array || x instanceof Uint16Array) {
      const want = dtype === 'fp32' ? Float32Array : Uint16Array;
      if (!(x instanceof want))
        throw new TypeError(`${name} must be a Tensor or a ${want.name} for ${dtype} data, got ${show(x)}`);
      if (x.length === 0) throw new RangeError(`${name} is empty`);
      if (need && x.length > need.n)
        throw new RangeError(`${name} has ${x.length} elements but [${need.dims.join('][')}] needs ${need.n}; a typed-array input must match its shape exactly`);
      const t = this.tensorFrom(x, dtype);
      temps.push(t);
      return t.handle;
    }
    throw new TypeError(`${name} must be a Tensor, Float32Array (fp32) or Uint16Array (fp16/bf16), got ${show(x)}`);
  }

  private outTensor(x: Tensor, op: string): NativeTensor {
    if (!(x instanceof Tensor)) throw new TypeError(`${op}: out must be a Tensor, got ${show(x)}`);
    return x.handle;
  }
}

/** Elements of a [rows][numHeads][headDim] query input, when its arguments are well formed. */
function queryShape(rows: number | undefined, numHeads: unknown, headDim: number): { n: number; dims: number[] } | undefined {
  if (rows === undefined || rows < 0 || typeof numHeads !== 'number' || !Number.isInteger(numHeads) || numHeads < 1) return undefined;
  return { n: rows * numHeads * headDim, dims: [rows, numHeads, headDim] };
}

function checkShape(shape: readonly number[] | undefined, name: string): number[] {
  if (!Array.isArray(shape) || shape.length === 0) throw new TypeError(`${name} must be a non-empty array of sizes, got ${show(shape)}`);
  return shape.map((d, i) => {
    if (typeof d !== 'number') throw new TypeError(`${name}[${i}] must be a number, got ${show(d)}`);
    if (!Number.isInteger(d) || d < 1) throw new RangeError(`${name}[${i}] = ${d} must be a positive integer`);
    return d;
  });
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Whether the loaded binary has the CUDA backend and a usable device. */
export function cudaInfo(): CudaInfo {
  return native().cudaInfo();
}

/** Backends usable in this process: always 'cpu', plus 'cuda' when a device is usable. */
export function usableBackends(): ('cpu' | 'cuda')[] {
  return cudaInfo().usable ? ['cpu', 'cuda'] : ['cpu'];
}

/** Path of the loaded native binary (for diagnostics). */
export function addonPath(): string {
  return nativePath();
}

/** Creates a backend. 'cuda' where CUDA is unusable throws with the reason. */
export function createBackend(opts?: BackendOptions): Backend {
  const o = options(opts, 'createBackend: options');
  const kind = o.backend ?? 'auto';
  if (kind !== 'cpu' && kind !== 'cuda' && kind !== 'auto')
    throw new RangeError(`createBackend: backend must be 'cpu', 'cuda' or 'auto', got ${show(kind)}`);
  const addon = native();
  let chosen: 'cpu' | 'cuda' = kind === 'auto' ? (addon.cudaInfo().usable ? 'cuda' : 'cpu') : kind;
  if (chosen === 'cuda') {
    const info = addon.cudaInfo();
    if (!info.usable) throw new Error(`kvcake: the cuda backend is not usable: ${info.reason}`);
  }
  const device = chosen === 'cuda' ? (o.device ?? 0) : 0;
  const handle = addon.createBackend(chosen, { device, deviceCapacityBytes: o.deviceCapacityBytes, cpuIsa: chosen === 'cpu' ? o.cpuIsa : undefined });
  return new Backend(handle, device);
}

/** Async form of createBackend (the same work; kept async so a backend may warm up later). */
export async function openBackend(opts?: BackendOptions): Promise<Backend> {
  return createBackend(opts);
}
