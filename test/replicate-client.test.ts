import Replicate, { type Prediction } from 'replicate';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceHarness, type ServiceHarness } from './api-harness.ts';

/**
 * The official `replicate` npm client, only its base URL and token changed, against the whole
 * service on loopback (the API over real HTTP, the real worker on the fixture model: 64×64
 * images, random text), with API keys on: the stream URL must open without the Authorization
 * header, as the client fetches it bare.
 */
const KEY = 'r8-test-replicate-client';
const MODEL = 'anole/anole-7b';
let h: ServiceHarness;
let replicate: Replicate;

beforeAll(async () => {
  h = await startServiceHarness({ policy: { allowHttp: true, allowedAddresses: ['127.0.0.1'] }, api: { apiKeys: [KEY] } });
  replicate = new Replicate({ auth: KEY, baseUrl: `${h.api.url}/v1` });
});
afterAll(() => h?.stop());

type Part = { type: 'text'; text: string; sequence: number } | { type: 'image'; url: string; width: number; height: number; sequence: number };
const textOf = (output: unknown) => (output as Part[]).map((p) => (p.type === 'text' ? p.text : '')).join('');
const text = (seed: number) => ({ prompt: 'Once upon a time', max_new_tokens: 12, sampling: { seed } });

async function expectPng(url: string) {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
  expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);
}

describe('replicate client: the served model', () => {
  it('models.get describes it; another model is a 404 naming the served one', async () => {
    const model = await replicate.models.get('anole', 'anole-7b');
    expect(model).toMatchObject({ owner: 'anole', name: 'anole-7b', visibility: 'public' });
    expect(model.latest_version?.id).toMatch(/^[0-9a-f]{64}$/);
    const e = await replicate.models.get('someone', 'other').then(
      () => null,
      (err: Error & { response?: Response }) => err,
    );
    expect(e?.response?.status).toBe(404);
    expect(e?.message).toContain(MODEL);
  });
});

describe('replicate client: predictions', () => {
  it('predictions.create({version, input}), then wait(): succeeded with the output parts', async () => {
    const model = await replicate.models.get('anole', 'anole-7b');
    const created = await replicate.predictions.create({ version: model.latest_version!.id, input: text(5) });
    expect(['starting', 'processing', 'succeeded']).toContain(created.status);
    const done = await replicate.wait(created, { interval: 100 });
    expect(done.status).toBe('succeeded');
    expect(textOf(done.output).length).toBeGreaterThan(0);
    // the version is Replicate's, not part of the input
    expect(done.input).toEqual(text(5));
  });

  it('run("owner/name"), run("owner/name:version") and predictions.create({model}) give the same text for one seed', async () => {
    const byModel = await replicate.run(MODEL, { input: text(9) });
    const version = (await replicate.models.get('anole', 'anole-7b')).latest_version!.id;
    const byVersion = await replicate.run(`${MODEL}:${version}`, { input: text(9) });
    const created = await replicate.predictions.create({ model: MODEL, input: text(9), wait: 30 });
    const waited = created.status === 'succeeded' ? created : await replicate.wait(created, { interval: 100 });
    expect(textOf(byModel).length).toBeGreaterThan(0);
    expect(textOf(byVersion)).toBe(textOf(byModel));
    expect(textOf(waited.output)).toBe(textOf(byModel));
  });

  it('run() makes an image; the deployments route creates a prediction of the served model', async () => {
    const output = (await replicate.run(MODEL, { input: { prompt: 'a red square', mode: 'image' } })) as Part[];
    const images = output.filter((p) => p.type === 'image');
    expect(images).toHaveLength(1);
    await expectPng(images[0].type === 'image' ? images[0].url : '');

    const created = await replicate.deployments.predictions.create('anole', 'anole-7b', { input: text(3) });
    expect((await replicate.wait(created, { interval: 100 })).status).toBe('succeeded');
    const wrong = await replicate.deployments.predictions.create('anole', 'other', { input: text(3) }).then(
      () => null,
      (err: Error & { response?: Response }) => err,
    );
    expect(wrong?.response?.status).toBe(404);
  });
});

describe("replicate client: stream (Replicate's protocol on urls.stream)", () => {
  it('stream() yields the text as output events, then done; it is the text the prediction keeps', async () => {
    const events: { event: string; data: string }[] = [];
    for await (const e of replicate.stream(MODEL, { input: text(21) })) events.push({ event: e.event, data: String(e.data) });
    expect(events.at(-1)).toEqual({ event: 'done', data: '{}' });
    const streamed = events.filter((e) => e.event === 'output').map((e) => e.data).join('');
    expect(streamed.length).toBeGreaterThan(0);
    expect(events.some((e) => e.event === 'logs' && e.data === 'status: processing')).toBe(true);
    // the same seed, waited for: the same text
    expect(textOf(await replicate.run(MODEL, { input: text(21) }))).toBe(streamed);
  });

  it("an image's output event is its URL; a canceled prediction's stream ends with done {reason: canceled}", async () => {
    const events: { event: string; data: string }[] = [];
    for await (const e of replicate.stream(MODEL, { input: { prompt: 'a red square', mode: 'image' }, useFileOutput: false })) events.push({ event: e.event, data: String(e.data) });
    const outputs = events.filter((e) => e.event === 'output');
    expect(outputs).toHaveLength(1);
    await expectPng(outputs[0].data);

    const created: Prediction = await replicate.predictions.create({ model: MODEL, input: { prompt: 'a long story', max_new_tokens: 2000 } });
    await replicate.predictions.cancel(created.id);
    const res = await fetch(created.urls.stream!, { headers: { accept: 'text/event-stream' } }); // no Authorization: the URL's token
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toMatch(/event: done\ndata: \{"reason":"canceled"\}/);
  });

  it('the stream token opens that stream only: another prediction, a changed token or none is 401', async () => {
    const a = await replicate.predictions.create({ model: MODEL, input: text(1) });
    const b = await replicate.predictions.create({ model: MODEL, input: text(2) });
    const tokenOf = (p: Prediction) => new URL(p.urls.stream!).searchParams.get('token')!;
    const streamOf = (id: string, token?: string) => `${h.api.url}/v1/predictions/${id}/stream?protocol=replicate${token !== undefined ? `&token=${token}` : ''}`;
    expect((await fetch(streamOf(b.id, tokenOf(a)))).status).toBe(401);
    // changed in its first character: the last one of an HMAC in base64url is 'A' one time in 16 (a CI
    // run hit it), and its low bits are padding, so a change there may not change the bytes
    const changed = (t: string) => `${t[0] === 'A' ? 'B' : 'A'}${t.slice(1)}`;
    expect((await fetch(streamOf(a.id, changed(tokenOf(a))))).status).toBe(401);
    expect((await fetch(streamOf(a.id))).status).toBe(401);
    const own = await fetch(streamOf(b.id, tokenOf(b)));
    expect(own.status).toBe(200);
    await own.body?.cancel();
  });
});
