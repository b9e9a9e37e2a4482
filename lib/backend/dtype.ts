// fp16 / bf16 bit patterns <-> fp32, for filling tensors from JS and reading them back.
// Both round to nearest even, as the hardware conversions do.

export type DType = 'fp32' | 'fp16' | 'bf16';

/** Bytes per element. */
export function dtypeBytes(dtype: DType): number {
  return dtype === 'fp32' ? 4 : 2;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function fp32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToFp32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

export function fp32ToFp16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflows to signed zero
    mant |= 0x800000; // make the implicit bit explicit, then shift into a subnormal
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m += 1;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1; // may carry into the exponent: correct
  return h;
}

export function fp16BitsToFp32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes float values as the storage array for `dtype` (Float32Array or bit patterns). */
export function encodeValues(values: ArrayLike<number>, dtype: DType): Float32Array | Uint16Array {
  if (dtype === 'fp32') return Float32Array.from(values);
  const out = new Uint16Array(values.length);
  const conv = dtype === 'fp16' ? fp32ToFp16Bits : fp32ToBf16Bits;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]);
  return out;
}

/** Decodes a storage array of `dtype` to fp32 values. */
export function decodeValues(data: Float32Array | Uint16Array, dtype: DType): Float32Array {
  if (dtype === 'fp32') return data instanceof Float32Array ? data : new Float32Array(data);
  const out = new Float32Array(data.length);
  const conv = dtype === 'fp16' ? fp16BitsToFp32 : bf16BitsToFp32;
  for (let i = 0; i < data.length; i++) out[i] = conv(data[i]);
  return out;
}
