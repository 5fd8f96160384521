import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anole } from './cli-harness.ts';
import { readSafetensorsHeader } from '../sidecar/weights/safetensors.ts';

const A = 'test/fixtures/anole-tiny';
const B = 'test/fixtures/anole-tiny-512';
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-preprocess-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A golden tensor's raw bytes as stored (float32 and uint8 goldens are little-endian, like our output). */
function goldenBytes(dir: string, name: string): Buffer {
  const entry = readSafetensorsHeader(`${dir}/goldens.safetensors`).tensors.get(name);
  if (!entry) throw new Error(`no golden ${name} in ${dir}`);
  const bytes = Buffer.alloc(entry.byteLength);
  const fd = fs.openSync(entry.file, 'r');
  fs.readSync(fd, bytes, 0, entry.byteLength, entry.offset);
  fs.closeSync(fd);
  return bytes;
}

describe('anole preprocess', () => {
  it("writes fixture A's pixel_values and resized-cropped uint8 image byte for byte", async () => {
    const out = path.join(tmp, 'a.bin');
    const u8 = path.join(tmp, 'a.raw');
    const r = await anole('preprocess', '--model', A, '--image', `${A}/input_image.png`, '--output', out, '--u8', u8);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.readFileSync(out).equals(goldenBytes(A, 'processor.pixel_values'))).toBe(true);
    expect(fs.readFileSync(u8).equals(goldenBytes(A, 'processor.resized_cropped_u8'))).toBe(true);
  });

  it("writes fixture B's pixel_values (an enlargement to 768×512, cropped to 512) byte for byte", async () => {
    const out = path.join(tmp, 'b.bin');
    const r = await anole('preprocess', '--model', B, '--image', `${B}/input_image.png`, '--output', out);
    expect(r.code).toBe(0);
    const bytes = fs.readFileSync(out);
    expect(bytes.length).toBe(3 * 512 * 512 * 4);
    expect(bytes.equals(goldenBytes(B, 'processor.pixel_values'))).toBe(true);
  });

  it('fails with one line naming the file for input that is not an image', async () => {
    const bad = path.join(tmp, 'not-an-image.png');
    fs.writeFileSync(bad, 'hello');
    const r = await anole('preprocess', '--model', A, '--image', bad, '--output', path.join(tmp, 'x.bin'));
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('not-an-image.png');
    expect(r.stderr).toMatch(/cannot decode image/);
    expect(fs.existsSync(path.join(tmp, 'x.bin'))).toBe(false);
  });
});
