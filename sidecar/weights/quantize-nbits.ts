/**
 * Block-wise symmetric weight quantization in the layout of ONNX Runtime's com.microsoft.MatMulNBits
 * (contrib op, domain com.microsoft). A HF Linear weight W [N = out, K = in] is cut along K into
 * blocks of `blockSize`; each block gets one scale and no zero point, so the kernel uses its
 * default zero point 2^(bits-1) (8 for int4, 128 for int8):
 *
 *   W[n, k] ≈ (q[n, k] − 2^(bits−1)) · scale[n, ⌊k / blockSize⌋]
 *
 *   packed: uint8 [N, kBlocks, blockSize·bits/8]; int4 puts element 2j in the low nibble of
 *           byte j and element 2j+1 in the high nibble; a short last block is zero-padded.
 *   scales: [N, kBlocks] (row-major: all blocks of output row n, then row n + 1)
 *
 * The scale is the block's largest-magnitude value divided by −2^(bits−1) (as ONNX Runtime's own
 * blockwise quantizer does), so that value is stored exactly as q = 0 and the grid keeps all
 * 2^bits levels.
 */
export type NBits = 4 | 8;

export interface NBitsMatrix {
  bits: NBits;
  blockSize: number;
  rows: number; // N
  cols: number; // K
  packed: Uint8Array; // [N, kBlocks, blobSize]
  scales: Float32Array; // [N, kBlocks]
}

export const blocksPerRow = (cols: number, blockSize: number) => Math.ceil(cols / blockSize);
export const blobBytes = (bits: NBits, blockSize: number) => (blockSize * bits) / 8;

/**
 * Quantizes W [rows, cols] (float32, row-major). `roundScales` maps the scales to the values they
 * will be stored as (e.g. fp16 for a GPU bundle), so the codes are chosen for the stored scales.
 */
export function quantizeNBits(
  w: Float32Array,
  rows: number,
  cols: number,
  bits: NBits,
  blockSize: number,
  roundScales: (scales: Float32Array) => Float32Array = (x) => x,
): NBitsMatrix {
  const scales = blockScales(w, rows, cols, bits, blockSize, roundScales);
  const kBlocks = blocksPerRow(cols, blockSize);
  const blob = blobBytes(bits, blockSize);
  const zero = 1 << (bits - 1);
  const maxCode = (1 << bits) - 1;
  const packed = new Uint8Array(rows * kBlocks * blob);
  for (let n = 0; n < rows; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const start = n * cols + b * blockSize;
      const end = n * cols + Math.min((b + 1) * blockSize, cols);
      const scale = scales[n * kBlocks + b];
      const inverse = scale === 0 ? 0 : 1 / scale;
      const out = (n * kBlocks + b) * blob;
      // a short last block is padded with the zero point, which dequantizes to 0
      for (let j = 0; j < blockSize; j++) {
        const q = start + j < end ? Math.min(maxCode, Math.max(0, Math.round(w[start + j] * inverse) + zero)) : zero;
        if (bits === 8) packed[out + j] = q;
        else packed[out + (j >> 1)] |= j & 1 ? q << 4 : q;
      }
    }
  }
  return { bits, blockSize, rows, cols, packed, scales };
}

/**
 * The scales alone ([rows, kBlocks]): a cheap pass, so a writer can store them without holding the
 * packed codes (safetensors writes scales and codes at different times).
 */
export function blockScales(w: Float32Array, rows: number, cols: number, bits: NBits, blockSize: number, roundScales: (scales: Float32Array) => Float32Array = (x) => x): Float32Array {
  if (w.length !== rows * cols) throw new Error(`quantize: ${w.length} values is not ${rows}×${cols}`);
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) throw new Error(`block size ${blockSize} must be a power of two ≥ 16`);
  const kBlocks = blocksPerRow(cols, blockSize);
  const zero = 1 << (bits - 1);
  const scales = new Float32Array(rows * kBlocks);
  for (let n = 0; n < rows; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const start = n * cols + b * blockSize;
      const end = n * cols + Math.min((b + 1) * blockSize, cols);
      let extreme = 0; // the signed value of largest magnitude
      for (let i = start; i < end; i++) if (Math.abs(w[i]) > Math.abs(extreme)) extreme = w[i];
      scales[n * kBlocks + b] = extreme / -zero;
    }
  }
  return roundScales(scales);
}

/** The float32 matrix [rows, cols] a MatMulNBits kernel sees: the reference for tests and error reports. */
export function dequantizeNBits(m: NBitsMatrix): Float32Array {
  const { bits, blockSize, rows, cols, packed, scales } = m;
  const kBlocks = blocksPerRow(cols, blockSize);
  const blob = blobBytes(bits, blockSize);
  const zero = 1 << (bits - 1);
  const out = new Float32Array(rows * cols);
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) {
      const b = Math.floor(k / blockSize);
      const j = k % blockSize;
      const byte = packed[(n * kBlocks + b) * blob + (bits === 8 ? j : j >> 1)];
      const q = bits === 8 ? byte : j & 1 ? byte >> 4 : byte & 15;
      out[n * cols + k] = Math.fround((q - zero) * scales[n * kBlocks + b]);
    }
  }
  return out;
}
