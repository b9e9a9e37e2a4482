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

export interface CudaInfo {
  /** The binary contains the CUDA backend. */
  compiledIn: boolean;
  /** A CUDA device can be used now. */
  usable: boolean;
  /** Why not, when not usable. */
  reason: string;
}

export interface NativeAddon {
  createBackend(kind: 'cpu' | 'cuda', options?: { device?: number; deviceCapacityBytes?: number; cpuIsa?: string }): NativeBackend;
  cudaInfo(): CudaInfo;
  abiVersion: number;
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
