import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anole } from './cli-harness.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const golden = JSON.parse(fs.readFileSync(`${FIXTURE}/goldens.json`, 'utf8'));
const goldenTensor = (name: string) => readTensorAsFloat32(readSafetensorsHeader(`${FIXTURE}/goldens.safetensors`).tensors.get(name)!);
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('anole CLI on fixture A', () => {
  it('forward writes float32 logits [B, T, V] matching the HF golden', async () => {
    const input = path.join(tmp, 'in.json');
    const ids = golden.text_forward?.input_ids ?? golden.generation.text_only_batch_leftpad.input_ids;
    const mask = golden.text_forward?.attention_mask ?? golden.generation.text_only_batch_leftpad.attention_mask;
    // default arange positions, as the golden's direct model call used
    const positions = ids.map((row: number[]) => row.map((_: number, t: number) => t));
    fs.writeFileSync(input, JSON.stringify({ input_ids: ids, attention_mask: mask, position_ids: positions }));
    const output = path.join(tmp, 'logits.bin');
    const r = await anole('forward', '--model', FIXTURE, '--input', input, '--output', output);
    expect(r.code).toBe(0);
    const buf = fs.readFileSync(output);
    const logits = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const expected = goldenTensor('text.logits');
    expect(logits.length).toBe(expected.length);
    const V = 65536;
    let max = 0;
    ids.forEach((row: number[], b: number) =>
      row.forEach((_, t) => {
        if (!mask[b][t]) return; // pad query rows are implementation-defined
        for (let v = 0; v < V; v++) max = Math.max(max, Math.abs(logits[(b * row.length + t) * V + v] - expected[(b * row.length + t) * V + v]));
      }),
    );
    console.log(`cli forward: max |logits - golden| = ${max.toExponential(2)}`);
    expect(max).toBeLessThan(1e-4);
  });

  it('decode-image turns golden token ids into the golden pixels and a PNG', async () => {
    const codes = path.join(tmp, 'tokens.json');
    fs.writeFileSync(codes, JSON.stringify({ token_ids: golden.vq.bpe_ids ?? golden.vq.bpe_ids_with_tokenizer_layout }));
    const png = path.join(tmp, 'decoded.png');
    const raw = path.join(tmp, 'decoded.bin');
    const r = await anole('decode-image', '--model', FIXTURE, '--codes', codes, '--output', png, '--raw', raw);
    expect(r.code).toBe(0);
    const buf = fs.readFileSync(raw);
    const pixels = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const expected = goldenTensor('vq.decoded_pixel_values');
    expect(Math.max(...pixels.map((p, i) => Math.abs(p - expected[i])))).toBeLessThan(1e-4);
    const { info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([64, 64]);
  });

  it('encode-image gives codes and their token ids (id = code + 4)', async () => {
    const out = path.join(tmp, 'codes.json');
    const r = await anole('encode-image', '--model', FIXTURE, '--image', `${FIXTURE}/input_image.png`, '--output', out);
    expect(r.code).toBe(0);
    const { codes, token_ids } = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(codes).toHaveLength(16);
    expect(token_ids).toEqual(codes.map((c: number) => c + 4));
    // sharp's resize is not PIL's (README): most codes still agree with the golden
    const same = codes.filter((c: number, i: number) => c === golden.vq.indices[i]).length;
    expect(same).toBeGreaterThanOrEqual(12);
  });

  it('generate --greedy reproduces the golden text-only and image-only tokens', async () => {
    const text = path.join(tmp, 'text');
    let r = await anole('generate', '--model', FIXTURE, '--prompt', 'Once upon a time there was a', '--text-completion', '--greedy', '--mode', 'text', '--max-new-tokens', '12', '--out', text);
    expect(r.stderr).not.toMatch(/anole:/);
    let result = JSON.parse(fs.readFileSync(path.join(text, 'result.json'), 'utf8'));
    expect(result.token_ids).toEqual(golden.generation.text_only.new_ids);
    expect(result.images).toEqual([]);

    const image = path.join(tmp, 'image');
    r = await anole('generate', '--model', FIXTURE, '--prompt', golden.generation.image_only.prompt, '--greedy', '--mode', 'image', '--guidance-text', '1', '--guidance-image', '1', '--out', image);
    expect(r.code).toBe(0);
    result = JSON.parse(fs.readFileSync(path.join(image, 'result.json'), 'utf8'));
    expect(result.token_ids).toEqual(golden.generation.image_only.new_ids);
    expect(result.images).toHaveLength(1);
    const { info } = await sharp(result.images[0]).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([64, 64]);
  });

  it('generate --stream prints JSON lines; --n makes n sequences', async () => {
    const out = path.join(tmp, 'stream');
    const r = await anole('generate', '--model', FIXTURE, '--prompt', 'a cat', '--mode', 'image', '--n', '2', '--seed', '5', '--stream', '--out', out);
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'image')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'image_rows').length).toBe(8);
    // the API's stream events, field for field (total_rows, not totalRows; no image_start)
    expect(events.find((e) => e.type === 'image_rows')).toEqual({ type: 'image_rows', sequence: 0, image: 0, rows: 1, total_rows: 4 });
    expect(events.some((e) => e.type === 'image_start')).toBe(false);
    expect(events[events.length - 1]).toEqual({ type: 'done', status: 'succeeded' });
    const result = JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8'));
    expect(result.sequences).toHaveLength(2);
    expect(result.sequences[0].token_ids).not.toEqual(result.sequences[1].token_ids);
  });

  it('generate without --seed draws one as the API does, prints it and keeps it; that seed makes the same result again', async () => {
    const run = async (dir: string, ...more: string[]) => {
      const r = await anole('generate', '--model', FIXTURE, '--prompt', 'a cat', '--mode', 'image', '--out', path.join(tmp, dir), ...more);
      expect(r.code, r.stderr).toBe(0);
      return { stderr: r.stderr, result: JSON.parse(fs.readFileSync(path.join(tmp, dir, 'result.json'), 'utf8')) };
    };
    const a = await run('seed-a');
    const b = await run('seed-b');
    const printed = /seed (\d+) \(--seed \1 makes this result again\)/.exec(a.stderr);
    expect(printed, a.stderr).not.toBeNull();
    expect(a.result.seed).toBe(Number(printed![1]));
    expect(b.result.seed).not.toBe(a.result.seed); // random, not a fixed default (a clash is 1 in 2^31)
    const again = await run('seed-again', '--seed', printed![1]);
    expect(again.result.seed).toBe(a.result.seed);
    expect(again.result.token_ids).toEqual(a.result.token_ids);
  });

  it('checks the options and reads the images before loading the model: a model without weights fails on the user error', async () => {
    // the fixture with its config, tokenizer and processor files but no weights: loading it would fail
    const weightless = path.join(tmp, 'weightless');
    fs.mkdirSync(weightless);
    for (const f of fs.readdirSync(FIXTURE)) if (f.endsWith('.json') && f !== 'goldens.json') fs.copyFileSync(path.join(FIXTURE, f), path.join(weightless, f));
    const loadFails = await anole('generate', '--model', weightless, '--prompt', 'x', '--max-new-tokens', '2', '--out', path.join(tmp, 'w0'));
    expect(loadFails.code).not.toBe(0); // the model itself cannot load: what the cases below never reach

    const noImage = await anole('generate', '--model', weightless, '--prompt', 'x <image>', '--image', path.join(tmp, 'missing.png'), '--out', path.join(tmp, 'w1'));
    expect(noImage.code).not.toBe(0);
    expect(noImage.stderr.trim().split('\n')).toEqual([`anole: --image ${path.join(tmp, 'missing.png')}: no such file`]);
    // before the model is even fetched: a model that does not exist is not what fails
    const noModel = await anole('generate', '--model', path.join(tmp, 'no-such-model'), '--prompt', 'x <image>', '--image', path.join(tmp, 'missing.png'), '--out', path.join(tmp, 'w1'));
    expect(noModel.stderr.trim().split('\n')).toEqual([`anole: --image ${path.join(tmp, 'missing.png')}: no such file`]);

    const short = await anole('generate', '--model', weightless, '--prompt', 'x', '--mode', 'image', '--max-new-tokens', '5', '--out', path.join(tmp, 'w2'));
    expect(short.code).not.toBe(0);
    expect(short.stderr.trim().split('\n')).toHaveLength(1);
    expect(short.stderr).toMatch(/^anole: an image needs 18 new tokens/);
    expect(short.stderr).not.toMatch(/loading the model/);
  });

  it('--version prints the package version; a mistyped option is one line, not the whole help', async () => {
    const v = await anole('--version');
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(JSON.parse(fs.readFileSync('package.json', 'utf8')).version);

    const typo = await anole('generate', '--prompt', 'x', '--sed', '3', '--out', path.join(tmp, 'typo'));
    expect(typo.code).not.toBe(0);
    expect(typo.stderr.trim().split('\n')).toEqual(["anole: unknown option '--sed' (Did you mean --seed?) (--help lists the options)"]);
    const missing = await anole('generate', '--out', path.join(tmp, 'typo'));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toEqual(["anole: required option '--prompt <text>' not specified (--help lists the options)"]);
  });

  it('generate --stream needs no --out when only text is made; --mode image without --out is one line before the model loads', async () => {
    const r = await anole('generate', '--model', FIXTURE, '--prompt', 'Once upon a time', '--max-new-tokens', '6', '--seed', '2', '--stream');
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'text').length).toBeGreaterThan(0);
    expect(events.every((e) => e.type === 'text' ? Object.keys(e).sort().join() === 'delta,sequence,type' : true)).toBe(true);
    expect(events[events.length - 1]).toEqual({ type: 'done', status: 'succeeded' });

    const image = await anole('generate', '--model', FIXTURE, '--prompt', 'a cat', '--mode', 'image', '--stream');
    expect(image.code).not.toBe(0);
    expect(image.stderr.trim().split('\n')).toEqual(['anole: generate --mode image makes PNG files: --out DIR says where they go']);
    const neither = await anole('generate', '--model', FIXTURE, '--prompt', 'x');
    expect(neither.stderr.trim().split('\n')).toEqual(['anole: generate needs --out DIR (where result.json and the PNGs go), or --stream for the events on stdout']);
  });

  it('a user error exits non-zero with one clear line on stderr', async () => {
    const missing = await anole('forward', '--model', path.join(tmp, 'nope'), '--input', 'x.json', '--output', 'y.bin');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n').filter((l) => l.startsWith('anole:'))).toHaveLength(1);

    const small = await anole('generate', '--model', FIXTURE, '--prompt', 'x', '--mode', 'image', '--max-new-tokens', '5', '--out', path.join(tmp, 'small'));
    expect(small.code).not.toBe(0);
    expect(small.stderr).toMatch(/anole: an image needs 18 new tokens/);

    const badMode = await anole('generate', '--prompt', 'x', '--mode', 'video', '--out', path.join(tmp, 'bad'));
    expect(badMode.code).not.toBe(0);
    expect(badMode.stderr).toMatch(/video/);
  });
});
