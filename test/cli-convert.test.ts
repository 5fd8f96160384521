import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { anole } from './cli-harness.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cli-convert-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('anole convert', () => {
  it('writes an int8 bundle that forward loads in place of the HF directory', async () => {
    const bundle = path.join(tmp, 'int8');
    const r = await anole('convert', '--from', FIXTURE, '--out', bundle, '--dtype', 'int8');
    expect(r.stderr).not.toMatch(/anole:/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe(bundle);
    const manifest = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
    expect(manifest.precision).toEqual({ dtype: 'int8', target: 'cpu' });
    expect(manifest.quantization).toEqual({ bits: 8, blockSize: 32, accuracyLevel: 4 }); // CPU default

    const input = path.join(tmp, 'in.json');
    fs.writeFileSync(input, JSON.stringify({ input_ids: [[0, 16400, 16500]] }));
    const f = await anole('forward', '--model', bundle, '--input', input, '--output', path.join(tmp, 'logits.bin'));
    expect(f.code).toBe(0);
    expect(fs.statSync(path.join(tmp, 'logits.bin')).size).toBe(3 * 65536 * 4);

  });

  it('refuses an unknown dtype and a non-empty output directory with one clear line', async () => {
    const bad = await anole('convert', '--from', FIXTURE, '--out', path.join(tmp, 'x'), '--dtype', 'int3');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/int3/);
    fs.mkdirSync(path.join(tmp, 'full'));
    fs.writeFileSync(path.join(tmp, 'full', 'keep.txt'), 'x');
    const busy = await anole('convert', '--from', FIXTURE, '--out', path.join(tmp, 'full'));
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/anole: .*full is not empty; refusing to overwrite it/);
  });

  it('refuses --target cuda --dtype fp32 (no engine runs it), saying what to use, and writes nothing', async () => {
    const out = path.join(tmp, 'cuda-fp32');
    const r = await anole('convert', '--from', FIXTURE, '--out', out, '--dtype', 'fp32', '--target', 'cuda');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('anole: anole convert: --target cuda --dtype fp32 has no engine (GroupQueryAttention has no float32 CUDA kernel); use --dtype fp16 or bf16');
    expect(fs.existsSync(out)).toBe(false);
    // the library call refuses it too, whoever calls it
    await expect(writeBundle({ from: FIXTURE, out, precision: { dtype: 'fp32', target: 'cuda' } })).rejects.toThrow('use --dtype fp16 or bf16');
    expect(fs.existsSync(out)).toBe(false);
  });
});
