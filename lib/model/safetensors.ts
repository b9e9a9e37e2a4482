// safetensors checkpoints: the header parsed and checked in JS, the payload left in the
// file until it is copied into native tensors.
//
// A file is: 8 bytes little-endian header length N, N bytes of UTF-8 JSON
//   { "<name>": { "dtype": "BF16", "shape": [..], "data_offsets": [begin, end] }, ...,
//     "__metadata__": { "<key>": "<string>" } }
// then the data section; offsets are relative to its start. A file comes from anywhere, so
// every field is checked before anything trusts it: the header length against the file and
// a limit, the JSON, each dtype, shape x dtype size against the byte range, each range
// inside the data section, no two ranges overlapping, and no bytes that belong to no
// tensor (the format forbids holes, which would let a file carry a second payload). Each
// failure is a SafetensorsError naming the file, the tensor and the limit.
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** The format's own limit on the header (the reference implementation's MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Element sizes in bytes of every safetensors dtype (sub-byte types are not loadable here). */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BYTES;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in its file. */
  offset: number;
  byteLength: number;
  /** Path of the file that holds it. */
  file: string;
}

export interface SafetensorsHeader {
  file: string;
  fileBytes: number;
  /** Byte offset of the data section (8 + header length). */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/**
 * The header length from the first 8 bytes, checked against the limit and the file size.
 * `first` holds at least the first 8 bytes of the file, or all of it when shorter.
 */
export function parseHeaderLength(first: Uint8Array, fileBytes: number, file: string): number {
  if (fileBytes < 8 || first.length < 8) throw new SafetensorsError(`${file}: file is ${fileBytes} bytes, too short for the 8-byte header length`);
  const n = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n) throw new SafetensorsError(`${file}: header length ${n} is below the minimum of 2 bytes ("{}")`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${file}: header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  if (n > BigInt(fileBytes - 8))
    throw new SafetensorsError(`${file}: header length ${n} runs past the end of the file (${fileBytes} bytes): truncated file?`);
  return Number(n);
}

/** Parses and checks the JSON header (`json` is the N header bytes). */
export function parseHeaderJson(json: Uint8Array, fileBytes: number, file: string): SafetensorsHeader {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${file}: ${msg}`);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (text[0] !== '{') fail('header does not start with "{"');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('header is not a JSON object');

  const dataStart = 8 + json.length;
  const dataBytes = fileBytes - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> | null = null;
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry) || Object.values(entry).some((v) => typeof v !== 'string'))
        fail('__metadata__ must be an object of string values');
      metadata = entry as Record<string, string>;
      continue;
    }
    const t = `tensor ${JSON.stringify(name)}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`${t}: entry must be an object with dtype, shape and data_offsets`);
    const e = entry as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) fail(`${t}: dtype ${JSON.stringify(dtype)} is not a safetensors dtype`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0))
      fail(`${t}: shape must be an array of non-negative integers, got ${short(shape)}`);
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      offs.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0) ||
      (offs[0] as number) > (offs[1] as number)
    )
      fail(`${t}: data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${short(offs)}`);
    const [begin, end] = offs as [number, number];
    const dims = shape as number[];
    let numel = 1;
    for (const d of dims) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) fail(`${t}: shape [${dims.join(', ')}] has too many elements`);
    }
    const size = DTYPE_BYTES[dtype as SafetensorsDType];
    const want = numel * size;
    if (!Number.isSafeInteger(want) || want !== end - begin)
      fail(`${t}: shape [${dims.join(', ')}] of ${dtype} needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    if (end > dataBytes)
      fail(`${t}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataBytes} bytes after the ${dataStart}-byte header): truncated file?`);
    tensors.set(name, { name, dtype: dtype as SafetensorsDType, shape: dims, offset: dataStart + begin, byteLength: end - begin, file });
  }

  // Sorted by start, each range must begin exactly where the previous one ended.
  const ranges = [...tensors.values()].filter((x) => x.byteLength > 0).sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let at = dataStart;
  let prev: TensorInfo | undefined;
  for (const r of ranges) {
    if (r.offset < at) {
      const p = prev!;
      fail(
        `tensors ${JSON.stringify(p.name)} [${p.offset - dataStart}, ${p.offset - dataStart + p.byteLength}) and ` +
          `${JSON.stringify(r.name)} [${r.offset - dataStart}, ${r.offset - dataStart + r.byteLength}) overlap`,
      );
    }
    if (r.offset > at) fail(`data bytes [${at - dataStart}, ${r.offset - dataStart}) belong to no tensor (the format allows no holes)`);
    at = r.offset + r.byteLength;
    prev = r;
  }
  if (at < fileBytes) fail(`data bytes [${at - dataStart}, ${dataBytes}) at the end of the file belong to no tensor (the format allows no holes)`);
  return { file, fileBytes, dataStart, tensors, metadata };
}

/** Parses a whole safetensors file held in memory (tests, small files). */
export function parseSafetensors(bytes: Uint8Array, file = '<memory>'): SafetensorsHeader {
  const n = parseHeaderLength(bytes.subarray(0, 8), bytes.length, file);
  return parseHeaderJson(bytes.subarray(8, 8 + n), bytes.length, file);
}

/** Reads and checks the header of a file; the payload is not read. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new SafetensorsError(`${file}: cannot open (${err.code ?? err.message})`, { cause: err });
  });
  try {
    const { size } = await fh.stat();
    const first = new Uint8Array(Math.min(8, size));
    await readFully(fh, first, 0, file, 'the header length');
    const n = parseHeaderLength(first, size, file);
    const json = new Uint8Array(n);
    await readFully(fh, json, 8, file, 'the header');
    return parseHeaderJson(json, size, file);
  } finally {
    await fh.close();
  }
}

type FileHandle = Awaited<ReturnType<typeof open>>;

async function readFully(fh: FileHandle, into: Uint8Array, position: number, file: string, what: string): Promise<void> {
  let got = 0;
  while (got < into.length) {
    const { bytesRead } = await fh.read(into, got, into.length - got, position + got);
    if (bytesRead === 0)
      throw new SafetensorsError(`${file}: read ${got} of ${into.length} bytes of ${what} at offset ${position}: the file was truncated while reading`);
    got += bytesRead;
  }
}

/** A checkpoint: one model.safetensors, or the shards of model.safetensors.index.json. */
export interface Checkpoint {
  dir: string;
  files: SafetensorsHeader[];
  /** Every tensor by name, with the file that holds it. */
  tensors: Map<string, TensorInfo>;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Opens the checkpoint in `dir` and checks every header (payloads stay on disk). */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const indexPath = path.join(dir, INDEX_FILE);
  const singlePath = path.join(dir, SINGLE_FILE);
  if (await exists(indexPath)) return openSharded(dir, indexPath);
  if (await exists(singlePath)) {
    const h = await readSafetensorsHeader(singlePath);
    return { dir, files: [h], tensors: new Map(h.tensors) };
  }
  throw new SafetensorsError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}`);
}

async function openSharded(dir: string, indexPath: string): Promise<Checkpoint> {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${indexPath}: ${msg}`);
  };
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (err) {
    return fail(`is not valid JSON (${(err as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) return fail('weight_map must be an object of tensor name -> shard file name');
  const shardNames = new Set<string>();
  for (const [name, f] of Object.entries(map)) {
    // A shard is a file beside the index: no directories, so an index cannot point elsewhere.
    if (typeof f !== 'string' || f === '' || f === '.' || f === '..' || f.includes('/') || f.includes('\\') || f.includes('\0'))
      fail(`weight_map[${JSON.stringify(name)}] = ${short(f)} must be a file name in the same directory`);
    shardNames.add(f as string);
  }
  if (shardNames.size === 0) fail('weight_map is empty');
  const files: SafetensorsHeader[] = [];
  const byFile = new Map<string, SafetensorsHeader>();
  for (const f of [...shardNames].sort()) {
    const p = path.join(dir, f);
    if (!(await exists(p))) fail(`names shard ${f}, which does not exist`);
    const h = await readSafetensorsHeader(p);
    files.push(h);
    byFile.set(f, h);
  }
  const tensors = new Map<string, TensorInfo>();
  for (const h of files) {
    for (const [name, t] of h.tensors) {
      const other = tensors.get(name);
      if (other) fail(`tensor ${JSON.stringify(name)} is in two shards, ${path.basename(other.file)} and ${path.basename(h.file)}`);
      tensors.set(name, t);
    }
  }
  for (const [name, f] of Object.entries(map as Record<string, string>)) {
    const t = tensors.get(name);
    if (!t || path.basename(t.file) !== f) fail(`maps tensor ${JSON.stringify(name)} to ${f}, which does not contain it`);
  }
  return { dir, files, tensors };
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads a tensor's bytes in chunks of at most `chunkBytes` (rounded down to whole
 * elements), calling `onChunk(bytes, byteOffset)` for each; the chunk buffer is reused, so
 * `onChunk` must copy what it keeps before returning. Never holds more than one chunk.
 */
export async function readTensorChunks(
  t: TensorInfo,
  onChunk: (bytes: Uint8Array, byteOffset: number) => void | Promise<void>,
  opts: { chunkBytes?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const elem = DTYPE_BYTES[t.dtype];
  const chunk = Math.max(elem, Math.floor((opts.chunkBytes ?? 8 << 20) / elem) * elem);
  const buf = new Uint8Array(Math.min(chunk, t.byteLength));
  const fh = await open(t.file, 'r');
  try {
    for (let done = 0; done < t.byteLength; ) {
      opts.signal?.throwIfAborted();
      const n = Math.min(buf.length, t.byteLength - done);
      const view = buf.subarray(0, n);
      await readFully(fh, view, t.offset + done, t.file, `tensor ${JSON.stringify(t.name)}`);
      await onChunk(view, done);
      done += n;
    }
  } finally {
    await fh.close();
  }
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
