import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * GET /openapi.json against the OpenAPI 3.1 JSON schema (a validator, not our own reading of it),
 * and what a client generator needs from it: an operationId for every operation, the stream
 * events and the chat chunk as schemas, a license.
 */
let h: ApiHarness;
let doc: Record<string, any>;
beforeAll(async () => {
  h = await startApiHarness();
  doc = await (await h.app.request('/openapi.json')).json();
});
afterAll(() => h?.stop());

describe('the OpenAPI document', () => {
  it('validates against the OpenAPI 3.1 schema', async () => {
    const res = await new Validator().validate(structuredClone(doc));
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    // and a broken one does not (the validator is not a rubber stamp)
    const broken = structuredClone(doc);
    delete broken.info.title;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('names every operation, uniquely; states a license', () => {
    const ops = Object.values(doc.paths).flatMap((item: any) => Object.values(item).map((op: any) => op.operationId));
    expect(ops.length).toBeGreaterThanOrEqual(13);
    expect(ops.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ops).size).toBe(ops.length);
    expect(doc.info.license.name).toBeTruthy();
  });

  it('describes the stream events and the chat chunk', () => {
    const s = doc.components.schemas;
    const streamed = doc.paths['/v1/predictions/{id}/stream'].get.responses['200'].content['text/event-stream'].schema;
    expect(streamed.$ref).toBe('#/components/schemas/StreamEvent');
    const events = s.StreamEvent.oneOf.map((e: any) => e.properties.event.enum[0]);
    expect(events.sort()).toEqual(['done', 'error', 'image', 'image_rows', 'reconnect', 'status', 'text']);
    const chat = doc.paths['/v1/chat/completions'].post.responses['200'].content['text/event-stream'].schema;
    expect(chat.$ref).toBe('#/components/schemas/ChatCompletionChunk');
    expect(s.ChatCompletionChunk.properties.object.enum).toEqual(['chat.completion.chunk']);
    expect(doc.paths['/v1/predictions/{id}/stream'].get.parameters.map((p: any) => p.name).sort()).toEqual(['id', 'last-event-id', 'protocol', 'token']);
  });
});
