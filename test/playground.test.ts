import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ensureChromium } from './chromium.ts';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from '../contract/serve-http.ts';
import { loadModel, releaseModel } from '../sidecar/worker/load-model.ts';
import { startWorker, type StartedWorker } from '../sidecar/worker/start-worker.ts';
import { FIXTURE_MODEL, startApiHarness } from './api-harness.ts';
import { startServe, type ServedProcess } from './serve-harness.ts';

/**
 * The playground page in a real browser (Debian's Chromium, driven by playwright-core) against
 * `anole serve` on the tiny model: an image grows from row previews to the final PNG, text streams
 * in, an uploaded image is used, the model is named (the random default with a warning), a refused
 * value shows at its control in words and an empty prompt is refused before sending, the gallery
 * survives a reload, the page fits a phone and is driven by the keyboard, and it requests nothing
 * outside its origin. Screenshots go to test/artifacts/.
 */
const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');

let served: ServedProcess;
let context: BrowserContext;
let profile: string;
/** Every request of every page, with the origin of the page that made it. */
const requested: { page: string; url: string }[] = [];

beforeAll(async () => {
  const browser = ensureChromium(); // before anything starts: a missing browser must leave nothing running
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-chromium-'));
  [served, context] = await Promise.all([
    startServe(),
    chromium.launchPersistentContext(profile, {
      executablePath: browser,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
      viewport: { width: 1280, height: 900 },
    }),
  ]);
}, 600_000); // a fresh machine may install Chromium first (test/chromium.ts)

afterAll(async () => {
  await context?.close();
  await served?.stop();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

async function openPage(viewport?: { width: number; height: number }, base = served.url): Promise<Page> {
  const page = await context.newPage();
  page.on('request', (r) => requested.push({ page: new URL(base).origin, url: r.url() }));
  if (viewport) await page.setViewportSize(viewport);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  (page as Page & { errors: string[] }).errors = errors;
  await page.goto(`${base}/`);
  return page;
}
const pageErrors = (page: Page) => (page as Page & { errors: string[] }).errors;
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `playground-${name}.png`), fullPage: true });

describe('the playground page', () => {
  it('grows an image row by row from previews, then shows the final PNG (not blank), and keeps it in the gallery', async () => {
    const page = await openPage();
    // in order: the events that reached the figure (data-received) and what it showed (data-state).
    // Records come in batches, so each keeps the value it replaced; the current value ends the list.
    await page.evaluate(() => {
      const w = window as unknown as { replaced: Record<string, string[]> };
      w.replaced = { 'data-received': [], 'data-state': [] };
      new MutationObserver((records) => {
        for (const r of records) if (r.target instanceof HTMLElement && r.target.tagName === 'FIGURE' && r.oldValue !== null) w.replaced[r.attributeName!].push(r.oldValue);
      }).observe(document.getElementById('output')!, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-state', 'data-received'] });
    });
    // hold the final PNG until a preview is on screen and photographed (on the tiny model the
    // events come in one burst, and a fast final PNG would replace the preview before any screenshot)
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await page.route(/\/image-0-0\.png\?/, async (route) => {
      await held;
      await route.continue();
    });

    await page.fill('#prompt', 'A lighthouse at dusk.');
    await page.check('input[name="mode"][value="image"]');
    await page.click('#settings summary');
    await page.fill('#seed', '7');
    await page.click('#run');

    await page.waitForSelector('figure[data-state^="preview"]', { timeout: 60_000 });
    await shot(page, 'image-preview');
    release();
    await page.waitForSelector('figure[data-state="final"]', { timeout: 60_000 });
    await page.waitForSelector('#gallery .card img');
    await shot(page, 'image-final');

    const { received, states } = await page.evaluate(() => {
      const { replaced } = window as unknown as { replaced: Record<string, string[]> };
      const figure = document.querySelector('#output figure') as HTMLElement;
      return { received: [...replaced['data-received'], figure.dataset.received!], states: [...replaced['data-state'], figure.dataset.state!] };
    });
    // the stream delivered at least one row preview before the final image
    const firstPreviewEvent = received.findIndex((s) => /^preview [1-3]\/4$/.test(s));
    expect(firstPreviewEvent, received.join(' | ')).toBeGreaterThanOrEqual(0);
    expect(received.indexOf('image')).toBeGreaterThan(firstPreviewEvent);
    // and the page showed it, then the final PNG
    const firstPreviewShown = states.findIndex((s) => /^preview [1-3]\/4$/.test(s));
    expect(firstPreviewShown, states.join(' | ')).toBeGreaterThanOrEqual(0);
    expect(states.indexOf('final')).toBeGreaterThan(firstPreviewShown);
    expect(states[states.length - 1]).toBe('final');

    const img = page.locator('figure[data-state="final"] img');
    expect(await img.evaluate((el: HTMLImageElement) => [el.complete, el.naturalWidth, el.naturalHeight])).toEqual([true, 64, 64]);
    const src = await img.getAttribute('src');
    expect(src!.startsWith(`${served.url}/`)).toBe(true);
    const png = Buffer.from(await (await fetch(src!)).arrayBuffer());
    const stats = await sharp(png).stats();
    // not blank: the pixels vary within each channel
    expect(Math.min(...stats.channels.map((c) => c.stdev)), JSON.stringify(stats.channels)).toBeGreaterThan(5);

    const download = page.locator('figure[data-state="final"] figcaption a');
    expect(await download.getAttribute('href')).toBe(src);
    expect(await page.locator('#status').textContent()).toMatch(/^Done in \d+(\.\d)? s\.$/);

    // the gallery is this browser's: it survives a reload
    await page.reload();
    const card = page.locator('#gallery .card').first();
    await expect.poll(() => card.locator('.prompt').textContent()).toBe('A lighthouse at dusk.');
    // the thumbnail loads after the card is drawn: wait for it rather than read it at once (it raced in CI)
    await expect.poll(() => card.locator('.thumbs img').evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(64);
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  }, 120_000);

  it('streams text in, driven by the keyboard alone; what streamed is what the API stored', async () => {
    const page = await openPage();
    await page.evaluate(() => {
      const w = window as unknown as { growth: { length: number; status: string }[] };
      w.growth = [];
      const output = document.getElementById('output')!;
      new MutationObserver(() => {
        const length = output.querySelector('.text')?.textContent?.length ?? 0;
        if (length > (w.growth.at(-1)?.length ?? 0)) w.growth.push({ length, status: document.getElementById('status')!.textContent ?? '' });
      }).observe(output, { subtree: true, childList: true, characterData: true });
    });

    // Tab from the top: the skip link, the schema link, the prompt (the key field is hidden: keys are off)
    const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent?.trim());
    const order: (string | undefined)[] = [];
    for (let k = 0; k < 3; k++) {
      await page.keyboard.press('Tab');
      order.push(await focused());
    }
    expect(order).toEqual(['Skip to the prompt', 'its schema', 'prompt']);
    await page.keyboard.type('Tell me about lighthouses.');
    // on to the settings: the images button, the mode radios (text is checked), the summary
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('pick');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).value)).toBe('text');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Sampling and guidance');
    await page.keyboard.press('Enter'); // opens it
    for (const [id, value] of [['temperature', ''], ['top_p', ''], ['top_k', ''], ['repetition_penalty', ''], ['guidance_text', ''], ['guidance_image', ''], ['seed', '11'], ['max_new_tokens', '100']]) {
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe(id);
      if (value) await page.keyboard.type(value);
    }
    // the controls show the server's defaults
    expect(await page.locator('#temperature').getAttribute('placeholder')).toBe('1.0 text, 0.7 image');
    expect(await page.locator('#guidance_text-default').textContent()).toBe('default: 3.0');
    await shot(page, 'text-form');

    await page.focus('#prompt');
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction(() => document.getElementById('status')!.textContent!.startsWith('Done in'), undefined, { timeout: 60_000 });
    await shot(page, 'text-final');

    const growth = await page.evaluate(() => (window as unknown as { growth: { length: number; status: string }[] }).growth);
    expect(growth.length, JSON.stringify(growth)).toBeGreaterThanOrEqual(2); // arrived in pieces
    expect(growth[0].status).toBe('Generating…'); // the first piece while it was still running
    const id = await page.locator('#output').getAttribute('data-prediction');
    const stored = await (await fetch(`${served.url}/v1/predictions/${id}`)).json();
    const storedText = stored.output.filter((p: { type: string }) => p.type === 'text').map((p: { text: string }) => p.text).join('');
    expect(storedText.length).toBeGreaterThan(0);
    expect(await page.locator('#output .text').textContent()).toBe(storedText);
    expect(stored.input).toMatchObject({ mode: 'text', max_new_tokens: 100, sampling: { seed: 11 } });
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  }, 120_000);

  it('uploads an attached image through /v1/uploads and uses it in the prompt', async () => {
    const page = await openPage();
    const picture = await sharp({ create: { width: 90, height: 60, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();
    await page.setInputFiles('#files', { name: 'red.png', mimeType: 'image/png', buffer: picture });
    expect(await page.locator('#attached li').textContent()).toContain('red.png');
    await page.fill('#prompt', 'What is in this picture?');
    await page.click('#settings summary');
    await page.fill('#max_new_tokens', '16');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('status')!.textContent!.startsWith('Done in'), undefined, { timeout: 60_000 });
    const id = await page.locator('#output').getAttribute('data-prediction');
    const stored = await (await fetch(`${served.url}/v1/predictions/${id}`)).json();
    expect(stored.status).toBe('succeeded');
    expect(stored.input.prompt).toBe('<image>What is in this picture?'); // the marker the page added
    expect(stored.input.images).toHaveLength(1);
    expect(requested.some((r) => r.url.startsWith(`${served.url}/anole/uploads/`))).toBe(true); // the PUT went to the presigned URL
    expect(await page.locator('#error').isHidden()).toBe(true);
    await page.close();
  }, 120_000);

  it('says which model answers and that the random default makes noise', async () => {
    const page = await openPage();
    expect(await page.locator('#model').textContent()).toBe('Model: anole/anole-7b · 2 layers, 64×64 pictures');
    const warning = page.locator('#model-warning');
    expect(await warning.isVisible()).toBe(true);
    expect(await warning.textContent()).toMatch(/^This is a small model with random weights, not Anole-7B .*its pictures are noise and its text is gibberish\. Start the server with ANOLE_MODEL set to a real checkpoint/);
    await page.close();
  });

  it('refuses an empty prompt at the prompt, sending nothing', async () => {
    const page = await openPage();
    const posted: string[] = [];
    page.on('request', (r) => r.method() === 'POST' && posted.push(r.url()));
    await page.fill('#prompt', '   ');
    await page.click('#run');
    const message = page.locator('#prompt-error');
    await message.waitFor({ state: 'visible' });
    expect(await message.textContent()).toBe('The prompt is empty: write what you want, or attach an image.');
    expect(await page.locator('#prompt').getAttribute('aria-invalid')).toBe('true');
    expect((await page.locator('#prompt').getAttribute('aria-describedby'))!.split(' ')).toEqual(['prompt-error', 'prompt-help']);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('prompt');
    expect(await page.locator('#status').textContent()).toBe('Not sent: see the form.');
    expect(posted).toEqual([]);
    // typing clears it
    await page.keyboard.type('Hello');
    expect(await message.count()).toBe(0);
    expect(await page.locator('#prompt').getAttribute('aria-invalid')).toBeNull();
    expect(await page.locator('#prompt').getAttribute('aria-describedby')).toBe('prompt-help');
    // a box that holds no number (a lone minus sign) is refused at that box, also before sending
    await page.click('#settings summary');
    await page.focus('#seed');
    await page.keyboard.type('-');
    await page.click('#run');
    await page.locator('#seed-error').waitFor({ state: 'visible' });
    expect(await page.locator('#seed-error').textContent()).toBe('Seed must be a number.');
    expect(await page.getByRole('alert').textContent()).toBe('Seed must be a number.');
    expect(posted).toEqual([]);
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  });

  it("shows a refused value at its control in words (from the server's param), not as a path", async () => {
    const page = await openPage();
    // what the server says about this input, asked directly: a zod path and zod's words
    const direct = await fetch(`${served.url}/v1/predictions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: { prompt: 'Hello', mode: 'text', sampling: { temperature: 50 } } }),
    });
    expect(direct.status).toBe(422);
    expect((await direct.json()).error).toMatchObject({ param: 'input.sampling.temperature', message: 'input.sampling.temperature: Too big: expected number to be <=10' });

    await page.fill('#prompt', 'Hello');
    await page.click('#settings summary');
    await page.fill('#temperature', '50');
    await page.click('#settings summary'); // closed again: the error opens it
    await page.click('#run');
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    expect(await alert.textContent()).toBe('Starting the prediction failed — Temperature must be at most 10.');
    const atField = page.locator('#temperature-error');
    expect(await atField.textContent()).toBe('Temperature must be at most 10.');
    expect(await atField.isVisible()).toBe(true); // the settings were opened to show it
    expect(await page.locator('#temperature').getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('temperature');
    await shot(page, 'bad-input');

    // a file that says PNG but is not one: refused when used, at the images, with the server's reason
    await page.fill('#temperature', '');
    expect(await atField.count()).toBe(0); // edited: its message went
    await page.setInputFiles('#files', { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('not a picture at all') });
    await page.click('#run');
    await expect.poll(() => alert.textContent()).toMatch(/^Starting the prediction failed — Images: not an image any decoder here reads: .+\.$/);
    expect(await page.locator('#images-error').textContent()).toMatch(/^Images: not an image any decoder here reads: .+/);
    expect(await page.locator('#drop').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#temperature-error').count()).toBe(0);
    expect(await alert.textContent()).not.toContain('input.');
    await shot(page, 'bad-image');
    await page.click('#attached button'); // removing the image clears the message at the images
    expect(await page.locator('#images-error').count()).toBe(0);
    expect(await page.locator('#drop').getAttribute('aria-invalid')).toBeNull();
    expect(pageErrors(page).filter((e) => !/status of 4\d\d/.test(e))).toEqual([]); // the browser logs the refused requests
    await page.close();
  }, 60_000);

  it('cancels a running prediction with the Cancel button', async () => {
    const page = await openPage();
    await page.fill('#prompt', 'A long story, please.');
    await page.click('#settings summary');
    await page.fill('#max_new_tokens', '3000');
    await page.click('#run');
    await page.locator('#output .text').waitFor(); // it is generating
    await page.click('#cancel');
    await page.waitForFunction(() => document.getElementById('output')!.dataset.status === 'canceled', undefined, { timeout: 60_000 });
    expect(await page.locator('#status').textContent()).toBe('Canceled.');
    expect(await page.locator('#gallery .card .meta').first().textContent()).toMatch(/ · text · canceled$/);
    await page.close();
  }, 90_000);

  it('asks for the API key when keys are on (401 in plain words without one), and resumes streams the server ends', async () => {
    // the API with a key and quarter-second streams, and a worker, on their own local stack
    const h = await startApiHarness({ limits: { pollMs: 50, maxStreamSeconds: 0.25 } });
    const api = await serveApi(h.makeApp({ apiKeys: ['sesame'] }));
    const workerConfig = {
      modelDir: FIXTURE_MODEL,
      s3: h.stack.s3,
      queue: h.stack.queue,
      health: { port: 0 },
      worker: { waitSeconds: 1, batchWindowMs: 20, cancelPollMs: 100 },
      intraOpNumThreads: 1,
    };
    // The worker takes the job only once the server has ended the page's first stream and the page
    // has come back for a second: a job that runs at once can be done before the server even
    // handles the first stream (then replayed in one), as 1000 tokens of the tiny model were under
    // a loaded CI.
    const model = loadModel(FIXTURE_MODEL, { intraOpNumThreads: 1 });
    let worker: StartedWorker | undefined;
    try {
      const page = await openPage(undefined, api.url);
      expect(await page.locator('#api-key').isVisible()).toBe(true);
      await page.fill('#prompt', 'Hello');
      await page.click('#settings summary');
      await page.fill('#max_new_tokens', '1000');
      await page.click('#run');
      await expect.poll(() => page.getByRole('alert').textContent()).toBe(
        'Starting the prediction failed — the API key is missing or wrong: missing API key: send Authorization: Bearer <key>',
      );
      await shot(page, 'keys-on');

      await page.fill('#api-key', 'sesame');
      await page.click('#run');
      // by this prediction's id: an earlier test's server may have had the same port
      await expect.poll(() => page.locator('#output').getAttribute('data-prediction')).toBeTruthy();
      const id = await page.locator('#output').getAttribute('data-prediction');
      const streamsOf = () => requested.filter((r) => r.url === `${api.url}/v1/predictions/${id}/stream`);
      await expect.poll(() => streamsOf().length, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
      worker = await startWorker(workerConfig, model);
      await page.waitForFunction(() => document.getElementById('status')!.textContent!.startsWith('Done in'), undefined, { timeout: 60_000 });
      const streams = streamsOf();
      expect(streams.length).toBeGreaterThanOrEqual(2); // the server ended the first after 0.25 s; the page came back
      const stored = await (await fetch(`${api.url}/v1/predictions/${id}`, { headers: { authorization: 'Bearer sesame' } })).json();
      const storedText = stored.output.map((p: { text?: string }) => p.text ?? '').join('');
      expect(storedText.length).toBeGreaterThan(0);
      const pageText = (await page.locator('#output .text').textContent()) ?? '';
      expect(pageText, whereTheyDiffer(pageText, storedText)).toBe(storedText); // nothing lost or repeated across streams
      expect(await page.getByRole('alert').isHidden()).toBe(true);
      await page.close();
    } finally {
      if (worker) await worker.stop();
      else await model.then(releaseModel);
      await api.close();
      await h.stop();
    }
  }, 90_000);

  it('fits a phone: one column, nothing wider than the screen', async () => {
    const page = await openPage({ width: 375, height: 740 });
    const [scrollWidth, innerWidth] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    expect(scrollWidth).toBeLessThanOrEqual(innerWidth);
    const form = await page.locator('#form').boundingBox();
    const result = await page.locator('#result').boundingBox();
    expect(result!.y).toBeGreaterThan(form!.y + form!.height - 1); // stacked, not side by side
    await shot(page, 'phone');
    await page.close();
  });

  it('requested nothing outside its own origin', () => {
    expect(requested.length).toBeGreaterThan(10);
    const foreign = requested.filter((r) => !r.url.startsWith('blob:') && !r.url.startsWith('data:') && new URL(r.url).origin !== r.page);
    expect(foreign).toEqual([]);
  });
});

/** Where two long texts first differ, with a little of each around it (for a failure's message). */
function whereTheyDiffer(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const around = (s: string) => JSON.stringify(s.slice(Math.max(0, i - 40), i + 40));
  return `lengths ${a.length} (page) and ${b.length} (stored); first difference at ${i}: page ${around(a)}, stored ${around(b)}`;
}
