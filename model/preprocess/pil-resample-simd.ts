/**
 * The two passes of pil-resample.ts as WebAssembly SIMD (i32x4: one pixel's R, G, B per vector in
 * the horizontal pass, 16 bytes of a row in the vertical one): the same int32 sums as Pillow, in
 * about a third of the time of the JavaScript loops (a 4096-pixel upload shrinks to 512 through
 * 49 taps per pixel). The module is assembled here from its opcodes, so nothing is built or
 * downloaded; where WebAssembly SIMD is missing `simdPasses()` returns undefined and the
 * JavaScript passes run instead.
 */

export interface SimdPasses {
  /** Horizontal pass over `rows` rows of `src` (RGB, `srcWidth` wide), into `outWidth`-wide rows. */
  horizontal(src: Uint8Array, srcWidth: number, rowOffset: number, rows: number, outWidth: number, bounds: Int32Array, weights: Int32Array, ksize: number): Uint8Array;
  /** Vertical pass: `outHeight` rows of `rowBytes` bytes; `shift` is subtracted from every first row. */
  vertical(src: Uint8Array, rowBytes: number, outHeight: number, bounds: Int32Array, weights: Int32Array, ksize: number, shift: number): Uint8Array;
}

// --- a minimal WebAssembly assembler ----------------------------------------------------------

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, payload: number[]): number[] => [id, ...uleb(payload.length), ...payload];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

const I32 = 0x7f;
const V128 = 0x7b;
const BLOCK = 0x02, LOOP = 0x03, END = 0x0b, BR = 0x0c, BR_IF = 0x0d, VOID = 0x40;
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32 = (v: number) => [0x41, ...sleb(v)];
const ADD = [0x6a], MUL = [0x6c], GE_S = [0x4e];
const load = (offset = 0) => [0x28, 2, ...uleb(offset)];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const V_LOAD = simd(0x00, 4, 0), V_STORE = simd(0x0b, 4, 0), LOAD8X8_U = simd(0x02, 3, 0);
const V_CONST_I32 = (v: number) => simd(0x0c, ...new Uint8Array(Int32Array.of(v, v, v, v).buffer));
const SPLAT = simd(0x11), ADD4 = simd(0xae), MUL4 = simd(0xb5), SHR_S4 = simd(0xac), MIN_S4 = simd(0xb6);
const EXT_LO_8 = simd(0x89), EXT_HI_8 = simd(0x8a), EXT_LO_16 = simd(0xa9), EXT_HI_16 = simd(0xaa);
const NARROW_32 = simd(0x86), NARROW_16 = simd(0x66), STORE32_LANE0 = simd(0x5a, 0, 0, 0);

/** `local += step` */
const bump = (local: number, step: number[]) => [...get(local), ...step, ...ADD, ...set(local)];
/** `for (; local < limit; …)`: the loop body ends with `br 0`; `br_if 1` leaves. */
const whileBelow = (local: number, limit: number[], body: number[]) => [
  BLOCK, VOID, LOOP, VOID, ...get(local), ...limit, ...GE_S, BR_IF, 1, ...body, BR, 0, END, END,
];
/** acc (i32x4 sums) → bytes: >> 22, min 255, narrowing saturates negatives to 0. */
const toBytes = (acc: number) => [...get(acc), ...i32(22), ...SHR_S4, ...V_CONST_I32(255), ...MIN_S4];

const HALF = 1 << 21;

// horizontal(src, rowBytes, out, outWidth, rows, bounds, weights, kbytes)
function horizontalBody(): number[] {
  const [src, rowBytes, out, outWidth, rows, bounds, weights, kbytes] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [yy, xx, b, kbase, p, kp, x, xmax] = [8, 9, 10, 11, 12, 13, 14, 15];
  const acc = 16;
  const taps = whileBelow(x, get(xmax), [
    ...get(acc),
    ...get(p), ...LOAD8X8_U, ...EXT_LO_16,
    ...get(kp), ...load(), ...SPLAT, ...MUL4, ...ADD4, ...set(acc),
    ...bump(p, i32(3)), ...bump(kp, i32(4)), ...bump(x, i32(1)),
  ]);
  const column = [
    ...get(src), ...get(b), ...load(), ...i32(3), ...MUL, ...ADD, ...set(p),
    ...get(b), ...load(4), ...set(xmax),
    ...get(kbase), ...set(kp),
    ...V_CONST_I32(HALF), ...set(acc),
    ...i32(0), ...set(x),
    ...taps,
    // bytes (v, v) → i16x8 → (v16, v16) → i8x16; lane 0 is R, G, B and a byte the next pixel overwrites
    ...toBytes(acc), ...set(acc),
    ...get(out), ...get(acc), ...get(acc), ...NARROW_32, ...set(acc),
    ...get(acc), ...get(acc), ...NARROW_16, ...STORE32_LANE0,
    ...bump(out, i32(3)), ...bump(b, i32(8)), ...bump(kbase, get(kbytes)), ...bump(xx, i32(1)),
  ];
  const row = [
    ...i32(0), ...set(xx), ...get(bounds), ...set(b), ...get(weights), ...set(kbase),
    ...whileBelow(xx, get(outWidth), column),
    ...bump(src, get(rowBytes)), ...bump(yy, i32(1)),
  ];
  return [...i32(0), ...set(yy), ...whileBelow(yy, get(rows), row), END];
}

// vertical(src, rowBytes, out, outHeight, bounds, weights, kbytes)
function verticalBody(): number[] {
  const [src, rowBytes, out, outHeight, bounds, weights, kbytes] = [0, 1, 2, 3, 4, 5, 6];
  const [yy, c, q, kp, y, ymax, first] = [7, 8, 9, 10, 11, 12, 13];
  const [a0, a1, a2, a3, px, w] = [14, 15, 16, 17, 18, 19];
  const mulAdd = (acc: number, half: number[], ext: number[]) => [...get(acc), ...get(px), ...half, ...ext, ...get(w), ...MUL4, ...ADD4, ...set(acc)];
  const taps = whileBelow(y, get(ymax), [
    ...get(q), ...V_LOAD, ...set(px),
    ...get(kp), ...load(), ...SPLAT, ...set(w),
    ...mulAdd(a0, EXT_LO_8, EXT_LO_16), ...mulAdd(a1, EXT_LO_8, EXT_HI_16),
    ...mulAdd(a2, EXT_HI_8, EXT_LO_16), ...mulAdd(a3, EXT_HI_8, EXT_HI_16),
    ...bump(q, get(rowBytes)), ...bump(kp, i32(4)), ...bump(y, i32(1)),
  ]);
  const chunk = [
    ...V_CONST_I32(HALF), ...set(a0), ...V_CONST_I32(HALF), ...set(a1), ...V_CONST_I32(HALF), ...set(a2), ...V_CONST_I32(HALF), ...set(a3),
    ...get(first), ...get(c), ...ADD, ...set(q),
    ...get(weights), ...set(kp),
    ...i32(0), ...set(y),
    ...taps,
    // out + c ← bytes of a0..a3 (16 bytes; past the row's end they land where the next row or the slack goes)
    ...get(out), ...get(c), ...ADD,
    ...toBytes(a0), ...toBytes(a1), ...NARROW_32, ...toBytes(a2), ...toBytes(a3), ...NARROW_32, ...NARROW_16,
    ...V_STORE,
    ...bump(c, i32(16)),
  ];
  const row = [
    // first = src + bounds[2yy]·rowBytes (already shifted by the caller), ymax = bounds[2yy + 1]
    ...get(src), ...get(bounds), ...load(), ...get(rowBytes), ...MUL, ...ADD, ...set(first),
    ...get(bounds), ...load(4), ...set(ymax),
    ...i32(0), ...set(c),
    ...whileBelow(c, get(rowBytes), chunk),
    ...bump(out, get(rowBytes)), ...bump(bounds, i32(8)), ...bump(weights, get(kbytes)), ...bump(yy, i32(1)),
  ];
  return [...i32(0), ...set(yy), ...whileBelow(yy, get(outHeight), row), END];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const funcType = (params: number) => [0x60, ...vec(Array.from({ length: params }, () => [I32])), 0];
  const body = (locals: [number, number][], code: number[]) => {
    const content = [...vec(locals.map(([count, type]) => [...uleb(count), type])), ...code];
    return [...uleb(content.length), ...content];
  };
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([funcType(8), funcType(7)])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vec([[0], [1]])),
    ...section(7, vec([[...name('h'), 0x00, 0], [...name('v'), 0x00, 1]])),
    ...section(10, vec([body([[8, I32], [1, V128]], horizontalBody()), body([[7, I32], [6, V128]], verticalBody())])),
  ]);
}

// --- memory and calls ----------------------------------------------------------------------------

const SLACK = 16; // the vertical pass reads and writes up to 15 bytes past a row; the horizontal reads 8 bytes at a pixel
const PAGE = 65536;
// Rows per call: V8 runs a WebAssembly function's first calls in baseline code and switches to the
// optimised code only at a later call, so one call for a whole image ran 5× slower than the next.
const CHUNK_ROWS = 32;

class WasmPasses implements SimdPasses {
  private readonly memory = new WebAssembly.Memory({ initial: 1 });
  private readonly h: (...args: number[]) => void;
  private readonly v: (...args: number[]) => void;

  constructor() {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), { env: { memory: this.memory } });
    this.h = instance.exports.h as (...args: number[]) => void;
    this.v = instance.exports.v as (...args: number[]) => void;
  }

  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Lays the arrays out 16-byte aligned with slack after each, growing the memory as needed. */
  private layout(sizes: number[]): { offsets: number[]; bytes: Uint8Array } {
    const offsets: number[] = [];
    let end = 0;
    for (const size of sizes) {
      offsets.push(end);
      end = Math.ceil((end + size + SLACK) / 16) * 16;
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    return { offsets, bytes: new Uint8Array(this.memory.buffer) };
  }

  horizontal(src: Uint8Array, srcWidth: number, rowOffset: number, rows: number, outWidth: number, bounds: Int32Array, weights: Int32Array, ksize: number): Uint8Array {
    const rowBytes = srcWidth * 3;
    const input = src.subarray(rowOffset * rowBytes, (rowOffset + rows) * rowBytes);
    const outBytes = rows * outWidth * 3;
    const { offsets, bytes } = this.layout([input.length, outBytes, bounds.byteLength, weights.byteLength]);
    const [inAt, outAt, boundsAt, weightsAt] = offsets;
    bytes.set(input, inAt);
    bytes.set(new Uint8Array(bounds.buffer, bounds.byteOffset, bounds.byteLength), boundsAt);
    bytes.set(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength), weightsAt);
    for (let r = 0; r < rows; r += CHUNK_ROWS) {
      this.h(inAt + r * rowBytes, rowBytes, outAt + r * outWidth * 3, outWidth, Math.min(CHUNK_ROWS, rows - r), boundsAt, weightsAt, ksize * 4);
    }
    const result = bytes.slice(outAt, outAt + outBytes);
    releaseIfLarge(this);
    return result;
  }

  vertical(src: Uint8Array, rowBytes: number, outHeight: number, bounds: Int32Array, weights: Int32Array, ksize: number, shift: number): Uint8Array {
    const shifted = Int32Array.from(bounds, (v, i) => (i % 2 === 0 ? v - shift : v));
    const outBytes = outHeight * rowBytes;
    const { offsets, bytes } = this.layout([src.length, outBytes, shifted.byteLength, weights.byteLength]);
    const [inAt, outAt, boundsAt, weightsAt] = offsets;
    bytes.set(src, inAt);
    bytes.set(new Uint8Array(shifted.buffer), boundsAt);
    bytes.set(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength), weightsAt);
    for (let r = 0; r < outHeight; r += CHUNK_ROWS) {
      this.v(inAt, rowBytes, outAt + r * rowBytes, Math.min(CHUNK_ROWS, outHeight - r), boundsAt + r * 8, weightsAt + r * ksize * 4, ksize * 4);
    }
    const result = bytes.slice(outAt, outAt + outBytes);
    releaseIfLarge(this);
    return result;
  }
}

// A WebAssembly memory never shrinks: after an image that needed more than this, the instance is
// dropped (a 4096×4096 upload needs 57 MiB and keeps it; an 8192×8192 one 230 MiB and does not).
const KEEP_MEMORY_BYTES = 128 * 2 ** 20;

let passes: WasmPasses | null | undefined;

/** The SIMD passes, or undefined where this runtime has no WebAssembly SIMD. */
export function simdPasses(): SimdPasses | undefined {
  if (passes === undefined) {
    try {
      passes = new WasmPasses();
    } catch {
      passes = null;
    }
  }
  return passes ?? undefined;
}

/** Called after each pass: forgets an instance whose memory grew past KEEP_MEMORY_BYTES. */
function releaseIfLarge(instance: WasmPasses): void {
  if (instance.memoryBytes > KEEP_MEMORY_BYTES && passes === instance) passes = undefined;
}
