// Loads the native addon and describes its raw interface. Only lib/backend.ts talks to
// these objects; everything else uses the typed API there.
//
// Which binary loads, first match wins:
//   1. KVCAKE_ADDON=/path/to/kvcake.node
//   2. build-cuda/Release/kvcake.node (the CUDA-capable build of `npm run build:cuda`),
//      unless build/Release/kvcake.node is newer: after editing C++ and running
//      `npm run build:native`, a stale CUDA build must not shadow the fresh one
//   3. node-gyp-build from the package root: build/Release (npm install, build:native),
//      then prebuilds/<platform>-<arch>/ (npm run prebuild)
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type DTypeName = 'fp32' | 'fp16' | 'bf16';
export type TierName = 'device' | 'host';

export interface NativeEvent {
  readonly promise: Promise<unknown>;
  ready(): boolean;
}

export interface NativeLayout {
  numBlocks: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  dtype: DTypeName;
  headStride: number;
  kvStride: number;
  blockStride: number;
  blockBytes: number;
}

export interface NativePool {
  readonly layout: NativeLayout;
  readonly bytes: number;
  readonly blockBytes: number;
  readonly tier: TierName;
  readonly released: boolean;
  release(): void;
}

export interface NativeTensor {
  readonly dtype: DTypeName;
  readonly numel: number;
  readonly bytes: number;
  readonly tier: TierName;
  readonly released: boolean;
  release(): void;
}

export interface NativeAttentionArgs {
  pool: NativePool;
  q: NativeTensor;
  out: NativeTensor;
  blockTables: Int32Array;
  tableStride: number;
  contextLens: Int32Array;
  numHeads: number;
  scale?: number;
}

export interface NativeBackend {
  readonly name: 'cpu' | 'cuda';
  readonly deviceName: string;
  liveBytes(tier: TierName): number;
  createPool(o: {
    numBlocks: number;
    numKvHeads: number;
    headDim: number;
    blockSize: number;
    dtype: DTypeName;
    tier: TierName;
  }): NativePool;
  createTensor(dtype: DTypeName, numel: number, tier?: TierName): NativeTensor;
  append(a: { pool: NativePool; k: NativeTensor; v: NativeTensor; slotMapping: Int32Array }, waitFor?: NativeEvent[]): NativeEvent;
  decode(a: NativeAttentionArgs, waitFor?: NativeEvent[]): NativeEvent;
  prefill(a: NativeAttentionArgs & { qStartLoc: Int32Array }, waitFor?: NativeEvent[]): NativeEvent;
  copyBlocks(src: NativePool, dst: NativePool, pairs: Int32Array, waitFor?: NativeEvent[]): NativeEvent;
  write(t: NativeTensor, data: Float32Array | Uint16Array, offset?: number, waitFor?: NativeEvent[]): NativeEvent;
  read(t: NativeTensor, waitFor?: NativeEvent[]): NativeEvent;
  readPool(p: NativePool, firstBlock: number, numBlocks: number, waitFor?: NativeEvent[]): NativeEvent;
  writePool(p: NativePool, firstBlock: number, data: Float32Array | Uint16Array, waitFor?: NativeEvent[]): NativeEvent;
  info(): Record<string, string>;
  reference(a: { kind: 'read'; pool: NativePool; blocks: Int32Array } | { kind: 'fma'; iterations: number }, waitFor?: NativeEvent[]): NativeEvent;
}

/** The prefix store's chunk spec as the native side takes it (lib/store/format.ts builds it). */
export interface NativeChunkSpec {
  fingerprint: Uint8Array;
  architecture: string;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  blocksPerLayer: number;
  dtype: DTypeName;
}

export interface NativeIoReport {
  bytes: number;
  seconds: number;
}

/** The prefix store's native I/O threads (csrc/store, csrc/napi/store_io_wrap.cc). */
export interface NativeStoreIo {
  readonly threads: number;
  readonly readCap: number;
  readFile(pool: NativePool, blocks: Int32Array, path: string, spec: NativeChunkSpec, key: Uint8Array, waitFor?: NativeEvent[]): NativeEvent;
  scatter(pool: NativePool, blocks: Int32Array, segments: Uint8Array[], spec: NativeChunkSpec, key: Uint8Array, waitFor?: NativeEvent[]): NativeEvent;
  writeFile(pool: NativePool, blocks: Int32Array, dir: string, spec: NativeChunkSpec, key: Uint8Array, waitFor?: NativeEvent[]): NativeEvent;
  gather(pool: NativePool, blocks: Int32Array, spec: NativeChunkSpec, key: Uint8Array, waitFor?: NativeEvent[]): NativeEvent;
  readValue(path: string, spec: NativeChunkSpec, key: Uint8Array): NativeEvent;
  writeValue(dir: string, segments: Uint8Array[], spec: NativeChunkSpec, key: Uint8Array): NativeEvent;
  setReadCap(bytesPerSecond: number, burstBytes?: number): void;
  dropPageCache(path: string): void;
  readPlain(path: string, offset: number, pool: NativePool, firstBlock: number, numBlocks: number): NativeEvent;
  close(): void;
}

export interface NativeHeaderInspection {
  ok: boolean;
  fault: string;
  message: string;
  header?: {
    version: number;
    headerBytes: number;
    key: string;
    fingerprint: string;
    architecture: string;
    numLayers: number;
    numKvHeads: number;
    headDim: number;
    dtype: DTypeName | number;
    blockSize: number;
    blocksPerLayer: number;
    tokens: number;
    blockBytes: number;
    payloadBytes: number;
    payloadChecksum: string;
  };
}

export interface CudaInfo {
  /** The binary contains the CUDA backend. */
  compiledIn: boolean;
  /** A CUDA device can be used now. */
  usable: boolean;
  /** Why not, when not usable. */
  reason: string;
}

export interface NativeOpsInfo {
  backend: 'cpu' | 'cuda';
  /** cpu: the ISA ceiling the kernels run at or below (cpuIsa, else KVCAKE_CPU_ISA, else the best level). */
  isa?: 'scalar' | 'avx2' | 'avx512' | 'avx512bf16' | 'avx512fp16';
  /** cpu: the ceiling was named (cpuIsa or KVCAKE_CPU_ISA), not chosen as the best. */
  isaForced?: boolean;
  gemm: string;
  /** A row's GEMM result does not depend on the rows beside it (cpu own kernels: yes; OpenBLAS, cuBLAS: no). */
  batchInvariant: boolean;
  /** cpu: the linked OpenBLAS, or null when this binary has none. */
  openblas?: string | null;
  cublas?: CublasInfo;
}

/** Argument objects are documented in docs/model-native-api.md; tensors are NativeTensors here. */
export interface NativeModelOps {
  gemm(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  rmsnorm(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  rope(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  siluMul(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  embed(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  add(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  logits(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  sample(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  fillUniform(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  loadTensor(be: NativeBackend, a: object, waitFor?: NativeEvent[]): NativeEvent;
  info(be: NativeBackend): NativeOpsInfo;
  fmaPeak(isa?: string, seconds?: number): number;
  cublasInfo(): CublasInfo;
}

export interface CublasInfo {
  loaded: boolean;
  path: string;
  /** Every library tried, each with why it did not load. */
  searched: string[];
  error: string;
}

export interface NativeModelRunner {
  forward(step: object, waitFor?: NativeEvent[]): { work: NativeEvent; appended: NativeEvent[]; copies: NativeEvent[] };
  release(): void;
  readonly released: boolean;
}

export interface NativeAddon {
  modelOps: NativeModelOps;
  ModelRunner: new (be: NativeBackend, config: object, weights: object) => NativeModelRunner;
  createBackend(kind: 'cpu' | 'cuda', options?: { device?: number; deviceCapacityBytes?: number; cpuIsa?: string }): NativeBackend;
  cudaInfo(): CudaInfo;
  abiVersion: number;
  StoreIo: new (options?: { threads?: number; readBytesPerSecond?: number; readBurstBytes?: number }) => NativeStoreIo;
  inspectChunkHeader(bytes: Uint8Array, spec?: NativeChunkSpec, key?: Uint8Array): NativeHeaderInspection;
  chunkHeaderBytes: number;
  storeChecksumPath: string;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

let cached: { addon: NativeAddon; path: string } | undefined;

function load(): { addon: NativeAddon; path: string } {
  const explicit = process.env.KVCAKE_ADDON;
  if (explicit) {
    try {
      return { addon: require(path.resolve(explicit)) as NativeAddon, path: path.resolve(explicit) };
    } catch (err) {
      throw new Error(`kvcake: could not load the native addon named by KVCAKE_ADDON=${explicit}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const cudaBuild = path.join(root, 'build-cuda', 'Release', 'kvcake.node');
  const gypBuild = path.join(root, 'build', 'Release', 'kvcake.node');
  const newer = (a: string, b: string) => !existsSync(b) || statSync(a).mtimeMs >= statSync(b).mtimeMs;
  if (existsSync(cudaBuild) && newer(cudaBuild, gypBuild)) {
    try {
      return { addon: require(cudaBuild) as NativeAddon, path: cudaBuild };
    } catch (err) {
      throw new Error(
        `kvcake: ${cudaBuild} exists but does not load (${(err as Error).message}); rebuild it with \`npm run build:cuda\` or remove build-cuda/`,
        { cause: err },
      );
    }
  }
  try {
    const load = require('node-gyp-build') as { (dir: string): NativeAddon; resolve?: (dir: string) => string };
    const addon = load(root);
    return { addon, path: load.resolve ? load.resolve(root) : 'node-gyp-build' };
  } catch (err) {
    throw new Error(
      'kvcake: no native addon fits this platform (no build/ and no matching prebuild). Build it: ' +
        '`npm rebuild kvcake` in your project (npm 11 skips a dependency\'s install script until ' +
        '`npm install-scripts approve kvcake`), ' +
        'or `npm run build:native` in a kvcake checkout; either needs python3, make and a C++17 compiler. ' +
        `Underlying error: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** The addon, loaded once. Throws an Error that says what to run when none loads. */
export function native(): NativeAddon {
  cached ??= load();
  return cached.addon;
}

/** Path of the addon binary that was loaded. */
export function nativePath(): string {
  native();
  return cached!.path;
}
