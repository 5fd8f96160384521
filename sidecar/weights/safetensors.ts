import fs from 'node:fs';
import { CheckpointError } from '../../model/checkpoint-error.ts';

/**
 * Safetensors reader. Only the header is parsed here: tensor data stay in the file and reach
 * ONNX Runtime as external data (file + offset), so a 14 GB checkpoint never passes through the
 * JavaScript heap. Layout: u64 little-endian header length N, N bytes of JSON, then the data
 * section; each tensor's `data_offsets` are relative to the start of the data section.
 */

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Where one tensor lives on disk. `file` is a real (symlink-free) absolute path. */
export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

// A real header is a few hundred kB; anything near this is a corrupt length field.
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function readSafetensorsHeader(path: string): SafetensorsHeader {
  let file: string;
  try {
    file = fs.realpathSync(path);
  } catch {
    throw new CheckpointError(path, 'file not found');
  }
  const size = fs.statSync(file).size;
  if (size < 8) throw new CheckpointError(path, `truncated safetensors file (${size} bytes, no header)`);
  const fd = fs.openSync(file, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const headerLength = Number(lenBuf.readBigUInt64LE(0));
    if (headerLength <= 1 || headerLength > MAX_HEADER_BYTES) {
      throw new CheckpointError(path, `corrupt safetensors header length ${headerLength} (file is ${size} bytes)`);
    }
    if (8 + headerLength > size) throw new CheckpointError(path, `truncated: the header needs ${8 + headerLength} bytes but the file has ${size}`);
    const json = Buffer.alloc(headerLength);
    fs.readSync(fd, json, 0, headerLength, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(json.toString('utf8'));
    } catch (e) {
      throw new CheckpointError(path, `corrupt safetensors header: ${(e as Error).message}`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw new CheckpointError(path, 'corrupt safetensors header: not a JSON object');
    const dataStart = 8 + headerLength;
    const tensors = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const info = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
      if (
        !info || typeof info.dtype !== 'string' || !Array.isArray(info.shape) || !info.shape.every(isCount) ||
        !Array.isArray(info.data_offsets) || info.data_offsets.length !== 2 || !info.data_offsets.every(isCount)
      ) {
        throw new CheckpointError(path, `corrupt safetensors header entry for tensor ${name}`);
      }
      const dtype = info.dtype as SafetensorsDtype;
      if (!(dtype in DTYPE_BYTES)) throw new CheckpointError(path, `tensor ${name} has unsupported dtype ${info.dtype}`);
      const [begin, end] = info.data_offsets;
      const elements = info.shape.reduce((a, b) => a * b, 1);
      if (end - begin !== elements * DTYPE_BYTES[dtype]) {
        throw new CheckpointError(
          path,
          `tensor ${name}: ${dtype}${JSON.stringify(info.shape)} needs ${elements * DTYPE_BYTES[dtype]} bytes but data_offsets span ${end - begin}`,
        );
      }
      if (begin < 0 || dataStart + end > size) {
        throw new CheckpointError(path, `truncated: tensor ${name} ends at byte ${dataStart + end} but the file has ${size}`);
      }
      tensors.set(name, { name, dtype, shape: info.shape, file, offset: dataStart + begin, byteLength: end - begin });
    }
    return { file, metadata, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads one tensor into memory as float32. For small tensors (norms, tests), never whole weight matrices. */
export function readTensorAsFloat32(entry: TensorEntry): Float32Array {
  const bytes = Buffer.alloc(entry.byteLength);
  const fd = fs.openSync(entry.file, 'r');
  try {
    fs.readSync(fd, bytes, 0, entry.byteLength, entry.offset);
  } finally {
    fs.closeSync(fd);
  }
  return decodeToFloat32(bytes, entry.dtype);
}

export function decodeToFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 'BF16': {
      // bfloat16 is the top half of a float32: shifting it back is exact.
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      return out;
    default:
      throw new Error(`cannot read ${dtype} as float32`);
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
