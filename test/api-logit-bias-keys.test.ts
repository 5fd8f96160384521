import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * logit_bias keys (issue 18, item 9): canonical decimal token ids only, so no key is silently
 * dropped (`__proto__`) and no two keys name one token (`5` and `00005`); the 400 names the key.
 */
let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
}, 60_000);
afterAll(async () => h?.stop());

const create = (logitBias: string) =>
  h.app.request('/v1/predictions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"input": {"prompt": "hi", "max_new_tokens": 2, "logit_bias": ${logitBias}}}` });

describe('logit_bias keys', () => {
  it.each([
    ['{"__proto__": 5}', '__proto__'],
    ['{"5": 2, "00005": 1}', '00005'],
    ['{"+5": 1}', '+5'],
    ['{"5.0": 1}', '5.0'],
    ['{"1e3": 1}', '1e3'],
  ])('%s is 400 naming %s', async (bias, key) => {
    const res = await create(bias);
    const body = (await res.json()) as { error: { code: string; message: string; param: string } };
    expect(res.status, JSON.stringify(body)).toBe(400);
    expect(body.error.param).toBe(`input.logit_bias.${key}`);
    expect(body.error.message).toContain(key);
  });

  it('canonical ids are accepted, 0 included', async () => {
    const res = await create('{"0": 1, "5": -2, "10": 3}');
    expect(res.status).toBe(201);
    const p = (await res.json()) as { input: { logit_bias: Record<string, number> } };
    expect(p.input.logit_bias).toEqual({ 0: 1, 5: -2, 10: 3 });
  });
});
