import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlForParam, refusalInWords, sentence } from '../functions/playground/field-errors.ts';
import { checkPrompt, FormError } from '../functions/playground/form-input.ts';
import { parseAnoleConfig } from '../model/config.ts';
import { summarizeCheckpoint } from '../model/checkpoint-summary.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * Issue 19, item 9: the playground shows a refused value at its control, in words, from the API's
 * own error body (its `param` and message), and refuses an empty prompt before sending it. The
 * bodies come from the real API (no copies of its messages), so a change in its wording shows here.
 */
let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
});
afterAll(() => h?.stop());

async function refusal(input: Record<string, unknown>): Promise<{ param: string | null; message: string }> {
  const res = await h.makeApp().request('/v1/predictions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: { prompt: 'Hello', mode: 'text', ...input } }) });
  expect(res.status, JSON.stringify(input)).toBeGreaterThanOrEqual(400);
  return (await res.json()).error;
}

describe('field errors in words', () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ sampling: { temperature: 50 } }, 'temperature', 'Temperature must be at most 10.'],
    [{ sampling: { temperature: -1 } }, 'temperature', 'Temperature must be more than 0.'],
    [{ sampling: { top_p: 2 } }, 'top_p', 'Top-p must be at most 1.'],
    [{ sampling: { top_k: 1.5 } }, 'top_k', 'Top-k must be a whole number.'],
    [{ sampling: { seed: -1 } }, 'seed', 'Seed must be at least 0.'],
    [{ sampling: { repetition_penalty: 0 } }, 'repetition_penalty', 'Repetition penalty must be at least 1.'],
    [{ guidance: { image: 1000 } }, 'guidance_image', 'Guidance, image must be at most 20.'],
    [{ guidance: { text: 0 } }, 'guidance_text', 'Guidance, text must be at least 1.'],
    [{ max_new_tokens: 0 }, 'max_new_tokens', 'Max new tokens must be at least 1.'],
    [{ n: 100 }, 'n', 'Sequences (n) must be at most 16.'],
    [{ prompt: 'x'.repeat(100_001) }, 'prompt', 'Prompt must be at most 100000 characters long.'],
    [{ prompt: '<image>Hello' }, 'images', 'Images: the prompt has 1 <image> marker(s) but 0 image(s) were given.'],
  ];
  const labels: Record<string, string> = {
    temperature: 'Temperature', top_p: 'Top-p', top_k: 'Top-k', seed: 'Seed', repetition_penalty: 'Repetition penalty', guidance_image: 'Guidance, image',
    guidance_text: 'Guidance, text', max_new_tokens: 'Max new tokens', n: 'Sequences (n)', prompt: 'Prompt', images: 'Images',
  };
  for (const [input, control, words] of cases) {
    it(`${JSON.stringify(input).slice(0, 60)}: at ${control}, "${words}"`, async () => {
      const error = await refusal(input);
      expect(controlForParam(error.param)).toBe(control);
      const shown = sentence(labels[control], refusalInWords(error.message, error.param));
      expect(shown).toBe(words);
      expect(shown).not.toContain('input.'); // no zod path left
    });
  }

  it('params no control sets stay with the general message', () => {
    expect(controlForParam(null)).toBeNull();
    expect(controlForParam('input.stop')).toBeNull();
    expect(controlForParam('input.images[2]')).toBe('images');
    expect(refusalInWords('input.webhook: must be an https URL', 'input.webhook')).toBe(': must be an https URL');
  });
});

describe('the empty prompt', () => {
  it('is refused at the prompt before sending, unless images are attached (they are a prompt)', () => {
    for (const blank of ['', '  \n ']) {
      let thrown: unknown;
      try {
        checkPrompt(blank, 0);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(FormError);
      expect((thrown as FormError).field).toBe('prompt');
      expect((thrown as FormError).message).toBe('The prompt is empty: write what you want, or attach an image.');
    }
    expect(() => checkPrompt('', 1)).not.toThrow();
    expect(() => checkPrompt('Hello', 0)).not.toThrow();
  });
});

describe('which model the page names', () => {
  it('the tiny fixture has a random shape; Anole-7B does not', () => {
    const tiny = parseAnoleConfig(JSON.parse(fs.readFileSync('test/fixtures/anole-tiny/config.json', 'utf8')));
    expect(summarizeCheckpoint(tiny)).toEqual({ layers: 2, hiddenSize: 32, imageSize: 64, randomShape: true });
    const anole7b = { ...tiny, numHiddenLayers: 32, hiddenSize: 4096, vq: { ...tiny.vq, resolution: 512 } };
    expect(summarizeCheckpoint(anole7b)).toEqual({ layers: 32, hiddenSize: 4096, imageSize: 512, randomShape: false });
    expect(summarizeCheckpoint({ ...anole7b, numHiddenLayers: 8 }).randomShape).toBe(true);
  });
});
