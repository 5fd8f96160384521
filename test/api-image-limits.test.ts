import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * Images whose pixel count is over the limit (issue 18, item 8), past sharp's own default limit
 * (0x3FFF² ≈ 268 MP) too: a 50000² PNG bomb and a 100000² SVG are 413 image_too_large, not 415.
 * The check reads only the header: nothing is decoded.
 */
let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
}, 60_000);
afterAll(async () => h?.stop());

/** A PNG that claims width × height: its header, one empty IDAT, its end. */
function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(0))), chunk('IEND', Buffer.alloc(0))]);
}

const create = (image: string) =>
  h.app.request('/v1/predictions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: { prompt: 'look <image>', images: [image] } }) });

describe('image pixel limit', () => {
  it.each([
    ['a 50000² PNG', `data:image/png;base64,${pngClaiming(50_000, 50_000).toString('base64')}`, '50000×50000'],
    ['a 100000² SVG', `data:image/svg+xml;base64,${Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"></svg>').toString('base64')}`, '100000×100000'],
    ['a 5000² PNG (over the service limit, under sharp’s)', `data:image/png;base64,${pngClaiming(5000, 5000).toString('base64')}`, '5000×5000'],
  ])('%s is 413 image_too_large naming the image', async (_, image, dims) => {
    const res = await create(image);
    const body = (await res.json()) as { error: { code: string; message: string; param: string } };
    expect(res.status, JSON.stringify(body)).toBe(413);
    expect(body.error).toMatchObject({ code: 'image_too_large', param: 'input.images[0]' });
    expect(body.error.message).toContain(dims);
  });
});
