import OpenAI from 'openai';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceHarness, type ServiceHarness } from './api-harness.ts';

/**
 * The official `openai` npm client, only its base URL and key changed, against the whole service
 * on loopback (the API over real HTTP, the real worker on the fixture model: 64×64 images, random
 * text). Every parameter the client sends is one a user would: refused ones must come back as
 * the client's APIError with OpenAI's `type`, our `code` and the parameter named.
 */
const KEY = 'sk-test-openai-client';
let h: ServiceHarness;
let client: OpenAI;

beforeAll(async () => {
  h = await startServiceHarness({ policy: { allowHttp: true, allowedAddresses: ['127.0.0.1'] }, api: { apiKeys: [KEY] } });
  client = new OpenAI({ baseURL: `${h.api.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
afterAll(() => h?.stop());

/** The client's error for a call that must fail. */
async function refusal(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const e = await call.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as InstanceType<typeof OpenAI.APIError>;
}

describe('openai client: models', () => {
  it('models.list names the served model; a wrong key is an authentication_error', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual(['anole/anole-7b']);
    expect(page.data[0]).toMatchObject({ object: 'model', owned_by: 'anole' });
    const e = await refusal(new OpenAI({ baseURL: `${h.api.url}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list());
    expect([e.status, e.type, e.code]).toEqual([401, 'authentication_error', 'unauthorized']);
  });
});

describe('openai client: images.generate', () => {
  it("size auto and the model's own size work; the documented hints are accepted", async () => {
    const res = await client.images.generate({
      prompt: 'a red square',
      size: 'auto',
      quality: 'hd',
      style: 'vivid',
      user: 'someone',
      output_format: 'png',
      moderation: 'low',
      response_format: 'b64_json',
    });
    expect(res.data).toHaveLength(1);
    const meta = await sharp(Buffer.from(res.data![0].b64_json!, 'base64')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);

    const sized = await client.images.generate({ prompt: 'a red square', size: '64x64' as never, n: 2 });
    expect(sized.data).toHaveLength(2);
    for (const d of sized.data!) expect((await fetch(d.url!)).status).toBe(200);
  });

  it('another size is 422 listing the allowed sizes, another output format 422; an unknown parameter is 400 naming it', async () => {
    const size = await refusal(client.images.generate({ prompt: 'x', size: '1024x1024' }));
    expect([size.status, size.type, size.code, size.param]).toEqual([422, 'invalid_request_error', 'invalid_value', 'size']);
    expect(size.message).toContain('64x64');
    expect(size.message).toContain('auto');

    // a known parameter with a value this server cannot honour is unprocessable, as everywhere in the API
    const format = await refusal(client.images.generate({ prompt: 'x', output_format: 'jpeg' }));
    expect([format.status, format.param]).toEqual([422, 'output_format']);

    const unknown = await refusal(client.images.generate({ prompt: 'x', background: 'transparent' }));
    expect([unknown.status, unknown.type, unknown.code, unknown.param]).toEqual([400, 'invalid_request_error', 'invalid_request', 'background']);
    expect(unknown.message).toContain('background');
  });
});

describe('openai client: chat.completions.create', () => {
  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
  const greedy = { model: 'anole/anole-7b', messages, temperature: 0, seed: 7, max_completion_tokens: 24 };

  it('stop ends the text before the first stop string, whole and streamed, finish_reason stop', async () => {
    const plain = await client.chat.completions.create(greedy);
    const text = plain.choices[0].message.content!;
    expect(text.length).toBeGreaterThan(8);
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    const expected = text.slice(0, text.indexOf(stop));

    const stopped = await client.chat.completions.create({ ...greedy, stop: ['never appears in this text \u0000', stop] });
    expect(stopped.choices[0].message.content).toBe(expected);
    expect(stopped.choices[0].finish_reason).toBe('stop');

    const stream = await client.chat.completions.create({ ...greedy, stop, stream: true });
    let streamed = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(streamed).toBe(expected);
    expect(finish).toBe('stop');
  });

  it('seed reproduces a sampled answer; n gives n choices; user is accepted; max_completion_tokens bounds the answer', async () => {
    const sampled = { model: 'anole/anole-7b', messages, temperature: 1, seed: 1234, max_completion_tokens: 12, user: 'someone' };
    const a = await client.chat.completions.create(sampled);
    const b = await client.chat.completions.create(sampled);
    expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
    const other = await client.chat.completions.create({ ...sampled, seed: 4321 });
    expect(other.choices[0].message.content).not.toBe(a.choices[0].message.content);

    const two = await client.chat.completions.create({ ...sampled, n: 2 });
    expect(two.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(two.usage!.completion_tokens).toBeLessThanOrEqual(24);
    expect(a.usage!.completion_tokens).toBeLessThanOrEqual(12);
  });

  it('presence and frequency penalties change a greedy answer; out of range is 422 naming the parameter', async () => {
    // the random model's greedy text seldom repeats a token, so negative penalties (which reward
    // repeating) are what move it; the engines' own tests check the positive direction
    const plain = await client.chat.completions.create(greedy);
    const penalised = await client.chat.completions.create({ ...greedy, presence_penalty: -2, frequency_penalty: -2 });
    expect(penalised.choices[0].message.content).not.toBe(plain.choices[0].message.content);
    const again = await client.chat.completions.create({ ...greedy, presence_penalty: -2, frequency_penalty: -2 });
    expect(again.choices[0].message.content).toBe(penalised.choices[0].message.content);

    const range = await refusal(client.chat.completions.create({ ...greedy, frequency_penalty: 3 }));
    expect([range.status, range.code, range.param]).toEqual([422, 'invalid_value', 'frequency_penalty']);
    const unknown = await refusal(client.chat.completions.create({ ...greedy, logprobs: true }));
    expect([unknown.status, unknown.type, unknown.param]).toEqual([400, 'invalid_request_error', 'logprobs']);
  });
});
