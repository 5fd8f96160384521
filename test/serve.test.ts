import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, type ServedProcess } from './serve-harness.ts';

/**
 * `npm start` as a newcomer runs it: `node bin/anole.js serve` with no configuration makes the tiny
 * model, starts S3 + SQS on loopback, the worker and the API, and says how to call it. A prediction
 * made with Prefer: wait comes back with an image whose presigned URL (on the API's own origin)
 * serves a real PNG; SIGTERM stops it all with exit code 0.
 */
let served: ServedProcess;

beforeAll(async () => {
  served = await startServe();
}, 120_000);
afterAll(async () => {
  await served?.stop();
});

describe('anole serve', () => {
  it('prints how to call it, with the embedded defaults made in its working directory', () => {
    const banner = served.stdout.join('\n');
    expect(banner).toContain(`${served.url}/v1/predictions`);
    expect(banner).toContain("-H 'Prefer: wait'");
    expect(banner).toContain('API keys are off');
    expect(fs.existsSync(path.join(served.cwd, '.cache/models/tiny/model.safetensors'))).toBe(true);
    expect(fs.existsSync(path.join(served.cwd, '.cache/local/s3'))).toBe(true);
  });

  it('makes an image with Prefer: wait; its URL serves a PNG; then SIGTERM stops everything', async () => {
    const res = await fetch(`${served.url}/v1/predictions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'wait=60' },
      body: JSON.stringify({ input: { prompt: 'A lighthouse at dusk.', mode: 'image', sampling: { seed: 3 } } }),
    });
    const prediction = await res.json();
    expect(res.status, JSON.stringify(prediction)).toBe(201);
    expect(prediction.status).toBe('succeeded');
    const image = prediction.output.find((p: { type: string }) => p.type === 'image');
    expect(image).toMatchObject({ width: 64, height: 64 });
    expect(image.url.startsWith(`${served.url}/`)).toBe(true); // the bucket on the API's origin

    const png = await fetch(image.url);
    expect(png.status).toBe(200);
    const bytes = Buffer.from(await png.arrayBuffer());
    const meta = await sharp(bytes).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 64, height: 64, channels: 3 });
    const unsigned = await fetch(image.url.split('?')[0]);
    expect(unsigned.status).toBe(403); // the bucket stays private

    const exit = await served.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(served.stderr.join('\n')).toContain('SIGTERM: stopping');
    await expect(fetch(`${served.url}/healthz`)).rejects.toThrow();
  }, 90_000);
});
