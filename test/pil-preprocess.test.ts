import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { decodeImage, resizeImage } from '../model/preprocess/image-processor.ts';
import { cmykToRgb, grey16ToPil, readPngHeader } from '../model/preprocess/pil-convert.ts';
import { PIL_RESAMPLE, pilResize } from '../model/preprocess/pil-resample.ts';
import { simdPasses } from '../model/preprocess/pil-resample-simd.ts';

// Expected bytes made once by Pillow 9.4 (Debian python3-pil, the PIL of the processor goldens) with
// test/fixtures/pil/make-pil-fixtures.py; see that script for how each case was made.
const DIR = 'test/fixtures/pil';

interface ResizeCase { filter: string; resample: number; width: number; height: number; offset: number }
interface ModeCase { key: string; file: string; pil_mode: string; width: number; height: number; offset: number; resized_offset: number }

const resizeMeta = JSON.parse(fs.readFileSync(`${DIR}/resize.json`, 'utf8')) as { pil: string; cases: ResizeCase[] };
const resizeBin = fs.readFileSync(`${DIR}/resize.bin`);
const modesMeta = JSON.parse(fs.readFileSync(`${DIR}/modes.json`, 'utf8')) as {
  pil: string;
  resized: { width: number; height: number; resample: number };
  modes: ModeCase[];
};
const modesBin = fs.readFileSync(`${DIR}/modes.bin`);

/** Differing bytes and the largest difference: 0 and 0 when exact, something to read when not. */
function diff(actual: Uint8Array, expected: Uint8Array): { length: number; differing: number; max: number } {
  let differing = 0;
  let max = 0;
  for (let i = 0; i < Math.min(actual.length, expected.length); i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (d) differing++;
    if (d > max) max = d;
  }
  return { length: actual.length - expected.length, differing, max };
}

const EXACT = { length: 0, differing: 0, max: 0 };

describe("PIL's Image.resize, against Pillow's own output", () => {
  it('the fixtures come from Pillow 9.4 and cover every filter, enlarging, shrinking and odd sizes', () => {
    expect(resizeMeta.pil).toBe('9.4.0');
    expect(new Set(resizeMeta.cases.map((c) => c.resample))).toEqual(new Set(Object.values(PIL_RESAMPLE)));
    const source = { width: 37, height: 23 };
    const kinds = new Set(resizeMeta.cases.map((c) => `${Math.sign(c.width - source.width)},${Math.sign(c.height - source.height)}`));
    for (const kind of ['1,1', '-1,-1', '1,-1', '-1,1', '0,1', '1,0']) expect(kinds).toContain(kind);
  });

  it('this Node has WebAssembly SIMD, so the cases below exercise both implementations of the passes', () => {
    expect(simdPasses()).toBeDefined();
  });

  for (const simd of [true, false]) {
    it(`every case byte for byte (${simd ? 'WebAssembly SIMD' : 'JavaScript'} passes)`, async () => {
      const { data, info } = await sharp(`${DIR}/resize-src.png`).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([37, 23, 3]);
      const source = { width: 37, height: 23, data: new Uint8Array(data) };
      const results = resizeMeta.cases.map((c) => {
        const out = pilResize(source, c.width, c.height, c.resample, undefined, { simd });
        const expected = resizeBin.subarray(c.offset, c.offset + c.width * c.height * 3);
        return { case: `${c.filter} ${c.width}×${c.height}`, ...diff(out.data, expected) };
      });
      expect(results.filter((r) => r.differing || r.length)).toEqual([]);
      expect(results).toHaveLength(60);
    });
  }

  it('SIMD and JavaScript passes agree on a large shrink and enlargement of noise (every filter, odd row lengths)', () => {
    const width = 613;
    const height = 411;
    const data = new Uint8Array(width * height * 3);
    for (let i = 0; i < data.length; i++) data[i] = Math.imul(i + 7, 2654435761) >>> 24;
    const source = { width, height, data };
    for (const resample of Object.values(PIL_RESAMPLE)) {
      for (const [w, h] of [[77, 51], [1000, 47], [29, 700]]) {
        const a = pilResize(source, w, h, resample, undefined, { simd: true });
        const b = pilResize(source, w, h, resample, undefined, { simd: false });
        expect({ resample, w, h, ...diff(a.data, b.data) }).toEqual({ resample, w, h, ...EXACT });
      }
    }
  });

  it('returns a copy for the same size, and refuses an unknown filter or a bad size', () => {
    const image = { width: 2, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    const same = pilResize(image, 2, 1, PIL_RESAMPLE.LANCZOS);
    expect(Array.from(same.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(same.data).not.toBe(image.data);
    expect(() => pilResize(image, 3, 1, 6)).toThrow(/unsupported PIL resample id 6/);
    expect(() => pilResize(image, 0, 1, 1)).toThrow(/positive integers/);
  });

  it('a box crops the source like resize(size, box=…): BOX over a 2×2 block averages it', () => {
    // 4×2 image; box (2, 0, 4, 2) → 1×1: the mean of the right 2×2 block, rounded half up.
    const data = Uint8Array.from([0, 0, 0, 0, 0, 0, 10, 20, 30, 11, 21, 31, 0, 0, 0, 0, 0, 0, 12, 22, 32, 13, 23, 34]);
    const out = pilResize({ width: 4, height: 2, data }, 1, 1, PIL_RESAMPLE.BOX, [2, 0, 4, 2]);
    expect(Array.from(out.data)).toEqual([12, 22, 32]);
  });
});

describe("PIL's decoding and blend_rgba, for every mode an upload can arrive in", () => {
  it('covers RGBA, LA, L, P with and without transparency, CMYK JPEG, 16-bit PNG, EXIF rotation', () => {
    expect(modesMeta.pil).toBe('9.4.0');
    const modes = new Set(modesMeta.modes.map((m) => m.pil_mode));
    for (const mode of ['RGBA', 'LA', 'L', 'P', 'RGB', 'CMYK', 'I']) expect(modes).toContain(mode);
    const keys = modesMeta.modes.map((m) => m.key);
    for (const key of ['p', 'p-trns', 'p-gif', 'cmyk-jpeg', 'rgb16', 'l16', 'rgb-trns', 'rgb-jpeg-exif-rotated']) expect(keys).toContain(key);
  });

  for (const m of modesMeta.modes) {
    it(`${m.key} (${m.file}, PIL mode ${m.pil_mode}): decoded RGB and its LANCZOS resize equal Pillow's`, async () => {
      const image = await decodeImage(fs.readFileSync(`${DIR}/${m.file}`));
      expect([image.width, image.height]).toEqual([m.width, m.height]);
      const rgbBytes = m.width * m.height * 3;
      expect(diff(image.data, modesBin.subarray(m.offset, m.offset + rgbBytes))).toEqual(EXACT);
      const { width, height, resample } = modesMeta.resized;
      const resized = resizeImage(image, width, height, resample);
      expect(diff(resized.data, modesBin.subarray(m.resized_offset, m.resized_offset + width * height * 3))).toEqual(EXACT);
    });
  }
});

describe('PIL conversions on their own', () => {
  it("cmyk2rgb: (255 − K) − C·(255 − K)/255 with Pillow's integer rounding", () => {
    // Values checked against Pillow 9.4: Image.frombytes('CMYK', (3, 1), …).convert('RGB').
    const cmyk = Uint8Array.from([222, 135, 80, 212, 0, 0, 0, 0, 255, 128, 1, 100]);
    expect(Array.from(cmykToRgb(cmyk, 3))).toEqual([6, 20, 30, 255, 255, 255, 0, 77, 154]);
  });

  it('16-bit grey (mode I) clips at 255, and a tRNS key matches on its low byte after clipping', () => {
    expect(Array.from(grey16ToPil(Uint16Array.from([0, 200, 255, 256, 65535]), 5).data)).toEqual([
      0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    ]);
    // Key 0x01FF → low byte 255: every clipped-to-255 pixel becomes transparent, 200 stays.
    const keyed = grey16ToPil(Uint16Array.from([200, 300, 0x01ff]), 3, 0x01ff);
    expect(keyed.channels).toBe(4);
    expect(Array.from(keyed.data)).toEqual([200, 200, 200, 255, 255, 255, 255, 0, 255, 255, 255, 0]);
  });

  it('reads a PNG header (bit depth, colour type, grey tRNS) and nothing from a JPEG', () => {
    expect(readPngHeader(fs.readFileSync(`${DIR}/mode-l16-trns.png`))).toMatchObject({ bitDepth: 16, colourType: 0 });
    expect(readPngHeader(fs.readFileSync(`${DIR}/mode-l16-trns.png`))?.greyKey).toBeTypeOf('number');
    expect(readPngHeader(fs.readFileSync(`${DIR}/mode-rgb-trns.png`))).toEqual({ bitDepth: 8, colourType: 2 });
    expect(readPngHeader(fs.readFileSync(`${DIR}/mode-cmyk.jpg`))).toBeUndefined();
  });
});
