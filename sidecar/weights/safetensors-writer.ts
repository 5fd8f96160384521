import fs from 'node:fs';
import type { SafetensorsDtype } from './safetensors.ts';

export interface TensorToWrite {
  name: string;
  dtype: Extract<SafetensorsDtype, 'F32' | 'F16' | 'BF16' | 'U8'>;
  shape: number[];
  /**
   * Values in float32; converted to `dtype` (round to nearest even) as they are written. A function
   * is called only when its tensor is written, so a generated checkpoint never sits in memory whole.
   * U8 tensors (packed quantized weights) take their bytes as a Uint8Array.
   */
  data: Float32Array | Uint8Array | (() => Float32Array | Uint8Array);
}

/**
 * Writes a safetensors file the way the Rust library lays it out: tensors sorted by dtype
 * (descending element size) then by name, each starting at a multiple of its element size.
 * Tensors are encoded and written one at a time, so memory stays bounded by the largest tensor.
 */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const bytesPer = (t: TensorToWrite) => BYTES[t.dtype];
  const ordered = [...tensors].sort((a, b) => bytesPer(b) - bytesPer(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of ordered) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (typeof t.data !== 'function') checkLength(t, t.data);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n * bytesPer(t)] };
    offset += n * bytesPer(t);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keeps the data section 8-byte aligned
  const fd = fs.openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const t of ordered) {
      const data = typeof t.data === 'function' ? checkLength(t, t.data()) : t.data;
      fs.writeSync(fd, encode(t.dtype, data));
    }
  } finally {
    fs.closeSync(fd);
  }
}

const BYTES: Record<TensorToWrite['dtype'], number> = { F32: 4, F16: 2, BF16: 2, U8: 1 };

function checkLength<T extends Float32Array | Uint8Array>(t: TensorToWrite, data: T): T {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`tensor ${t.name}: shape [${t.shape}] holds ${n} values, got ${data.length}`);
  if ((t.dtype === 'U8') !== data instanceof Uint8Array) throw new Error(`tensor ${t.name}: ${t.dtype} data must be a ${t.dtype === 'U8' ? 'Uint8Array' : 'Float32Array'}`);
  return data;
}

function encode(dtype: TensorToWrite['dtype'], data: Float32Array | Uint8Array): Uint8Array {
  if (data instanceof Uint8Array) return data;
  return encodeFloats(dtype as 'F32' | 'F16' | 'BF16', data);
}

/** float32 values in a float dtype's little-endian bytes, rounded to nearest even. */
export function encodeFloats(dtype: 'F32' | 'F16' | 'BF16', data: Float32Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < u32.length; i++) {
      const x = u32[i];
      // round to nearest even on the dropped 16 bits (NaN stays NaN)
      out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  } else {
    for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]);
  }
  return new Uint8Array(out.buffer);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && half & 1) ? 1 : 0));
}
