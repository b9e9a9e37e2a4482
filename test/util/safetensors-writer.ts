// A small safetensors writer for tests, written from the format description (8-byte
// little-endian header length, JSON header, data section) and sharing no code with
// lib/model. `rawSafetensors` builds any header at all, hostile ones included.
import { writeFileSync } from 'node:fs';
import { toBits, type RefDType } from '../reference.js';

export type StDType = 'F32' | 'F16' | 'BF16';

export const ST_DTYPE: Record<RefDType, StDType> = { fp32: 'F32', fp16: 'F16', bf16: 'BF16' };

export interface StTensor {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Values already representable in dtype (rounded by the caller). */
  values: ArrayLike<number>;
}

export function encodeValues(dtype: StDType, values: ArrayLike<number>): Uint8Array {
  if (dtype === 'F32') {
    const f = Float32Array.from(values);
    return new Uint8Array(f.buffer);
  }
  const bits = new Uint16Array(values.length);
  if (dtype === 'BF16') {
    // A bf16 value is an fp32 value whose low 16 bits are zero: its bits are the high half.
    const f = Float32Array.from(values);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < u.length; i++) {
      if ((u[i] & 0xffff) !== 0 && !Number.isNaN(f[i])) throw new RangeError(`encodeValues: ${f[i]} is not a bf16 value`);
      bits[i] = u[i] >>> 16;
    }
  } else {
    for (let i = 0; i < values.length; i++) bits[i] = toBits('fp16', values[i]);
  }
  // Little-endian host (x86-64, arm64): the typed array's bytes are the file's bytes.
  return new Uint8Array(bits.buffer);
}

/** Header bytes + data, from a header object given as is and a data section. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), opts: { headerText?: string; lengthOverride?: bigint } = {}): Uint8Array {
  const text = opts.headerText ?? JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** A valid file: tensors packed in order, header padded with spaces to 8 bytes as the reference writer does. */
export function buildSafetensors(tensors: StTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const t of tensors) {
    const bytes = encodeValues(t.dtype, t.values);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + bytes.length] };
    parts.push(bytes);
    at += bytes.length;
  }
  let text = JSON.stringify(header);
  while ((8 + text.length) % 8 !== 0) text += ' ';
  const data = new Uint8Array(at);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return rawSafetensors(null, data, { headerText: text });
}

export function writeSafetensors(file: string, tensors: StTensor[], metadata?: Record<string, string>): void {
  writeFileSync(file, buildSafetensors(tensors, metadata));
}
