import { ApiClient, ApiFailure } from './api-client.ts';
import { Attachments } from './attachments.ts';
import { followStream, type StreamEvent } from './event-stream.ts';
import { controlForParam, refusalInWords, sentence } from './field-errors.ts';
import { FieldMessages } from './field-messages.ts';
import { checkPrompt, FormError, predictionBody, readForm } from './form-input.ts';
import { entryOf, Gallery } from './gallery.ts';
import { OutputView } from './output-view.ts';
import type { PlaygroundConfig } from './page-config.ts';

/**
 * The playground page: a prompt (with images, a mode, sampling and guidance) runs as a
 * prediction whose stream fills the result as it is generated; finished runs go to the gallery.
 * Everything it requests is on its own origin (the server sends a CSP that says so).
 */
const config = JSON.parse(document.getElementById('config')!.textContent!) as PlaygroundConfig;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const form = $<HTMLFormElement>('form');
const promptBox = $<HTMLTextAreaElement>('prompt');
const keyField = $<HTMLDivElement>('key-field');
const keyInput = $<HTMLInputElement>('api-key');
const runButton = $<HTMLButtonElement>('run');
const cancelButton = $<HTMLButtonElement>('cancel');
const statusLine = $<HTMLParagraphElement>('status');
const errorBox = $<HTMLDivElement>('error');
const outputEl = $<HTMLDivElement>('output');
const fields = new FieldMessages(form);

// the API key stays in this tab (sessionStorage), never in the gallery
const KEY_STORE = 'anole.playground.key';
keyField.hidden = !config.keysOn;
keyInput.value = sessionStorage.getItem(KEY_STORE) ?? '';
keyInput.addEventListener('change', () => sessionStorage.setItem(KEY_STORE, keyInput.value.trim()));
const api = new ApiClient(() => (config.keysOn ? keyInput.value : ''));

showDefaults(config.defaults);
showModel(config.model);

const attachments = new Attachments(
  { drop: $('drop'), picker: $('files'), pick: $('pick'), list: $('attached') },
  { maxImages: config.limits.maxImages, types: config.limits.uploadTypes },
  showError,
);
document.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.files ?? [])];
  if (files.length > 0) attachments.add(files);
});

const gallery = new Gallery($('gallery'), {
  refresh: async (id) => {
    try {
      return await api.getPrediction(id);
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 404) return null;
      throw e;
    }
  },
  reuse: (entry) => {
    promptBox.value = entry.prompt;
    (form.elements.namedItem('mode') as RadioNodeList).value = entry.mode;
    promptBox.focus();
  },
});
$('clear-gallery').addEventListener('click', () => gallery.clear());

promptBox.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    form.requestSubmit();
  }
});

let running: { id: string | null; abort: AbortController } | null = null;

form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!running) void run();
});
cancelButton.addEventListener('click', () => {
  if (!running?.id) return;
  cancelButton.disabled = true;
  setStatus('Canceling…');
  api.cancel(running.id).catch(showError);
});

async function run(): Promise<void> {
  const current = (running = { id: null as string | null, abort: new AbortController() });
  hideError();
  fields.clear();
  runButton.disabled = true;
  const started = performance.now();
  let output: OutputView | undefined;
  try {
    const values = readForm(form);
    const files = attachments.all;
    checkPrompt(values.prompt, files.length);
    const uploads: string[] = [];
    for (const [k, file] of files.entries()) {
      setStatus(`Uploading image ${k + 1} of ${files.length}…`);
      uploads.push(await api.upload(file));
    }
    setStatus('Starting…');
    const created = await api.createPrediction(predictionBody(values, uploads, config.imageToken));
    current.id = created.id;
    cancelButton.disabled = false;
    output?.release();
    output = new OutputView(outputEl);
    outputEl.dataset.prediction = created.id;
    let failure: string | null = null;
    await followStream(
      created.id,
      api.headers(),
      (event: StreamEvent) => {
        if (event.type === 'status') setStatus(STATUS_WORDS[event.status] ?? event.status);
        else if (event.type === 'error') failure = event.message;
        else output!.apply(event);
      },
      current.abort.signal,
    );
    const final = await api.getPrediction(created.id);
    gallery.add(entryOf(final, values.prompt, values.mode));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (final.status === 'succeeded') setStatus(`Done in ${seconds} s.`);
    else setStatus(STATUS_WORDS[final.status] ?? final.status);
    if (final.status === 'failed' || final.status === 'aborted') showError(`The prediction ${final.status === 'failed' ? 'failed' : 'was aborted'}: ${final.error ?? failure ?? 'the server gave no reason'}`);
    outputEl.dataset.status = final.status;
  } catch (e) {
    setStatus(e instanceof FormError ? 'Not sent: see the form.' : 'Stopped by an error.');
    showError(e);
  } finally {
    running = null;
    runButton.disabled = false;
    cancelButton.disabled = true;
  }
}

const STATUS_WORDS: Record<string, string> = {
  starting: 'Waiting for the worker…',
  processing: 'Generating…',
  succeeded: 'Done.',
  failed: 'Failed.',
  canceled: 'Canceled.',
  aborted: 'Aborted: its Cancel-After deadline passed before it started.',
};

function setStatus(text: string): void {
  statusLine.textContent = text;
}

/** In the alert; a refused value also at its control, in words (the server's param names it). */
function showError(e: unknown): void {
  let message: string;
  if (e instanceof FormError) {
    fields.show(e.field, e.message);
    message = e.message;
  } else if (e instanceof ApiFailure) {
    const control = controlForParam(e.param);
    const text = control && e.serverMessage ? sentence(fields.label(control), refusalInWords(e.serverMessage, e.param)) : null;
    message = text && fields.show(control!, text) ? `${e.action} failed — ${text}` : e.message;
  } else message = typeof e === 'string' ? e : `Something went wrong in the page: ${(e as Error)?.message ?? e}`;
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function hideError(): void {
  errorBox.hidden = true;
  errorBox.textContent = '';
}

/** Which model answers, and that a random one's pictures are noise (the default model is one). */
function showModel(m: PlaygroundConfig['model']): void {
  $('model').textContent = `Model: ${m.id} · ${m.layers} layers, ${m.imageSize}×${m.imageSize} pictures`;
  const warning = $('model-warning');
  warning.hidden = !m.randomShape;
  warning.textContent = m.randomShape
    ? "This is a small model with random weights, not Anole-7B (the server's default when it is given no model): its pictures are noise and its text is gibberish. Start the server with ANOLE_MODEL set to a real checkpoint for real ones."
    : '';
}

/** Each control's placeholder and hint show the server's default. */
function showDefaults(d: PlaygroundConfig['defaults']): void {
  const shown: Record<string, string> = {
    temperature: `${fmt(d.temperature.text)} text, ${fmt(d.temperature.image)} image`,
    top_p: fmt(d.topP),
    top_k: d.topK === 0 ? '0 (off)' : fmt(d.topK),
    repetition_penalty: fmt(d.repetitionPenalty),
    guidance_text: fmt(d.guidance.text),
    guidance_image: fmt(d.guidance.image),
    seed: 'random',
    max_new_tokens: 'enough for the mode',
    n: '1',
  };
  for (const [name, text] of Object.entries(shown)) {
    const input = form.elements.namedItem(name) as HTMLInputElement;
    input.placeholder = text;
    const hint = document.getElementById(`${name}-default`);
    if (hint) hint.textContent = `default: ${text}`;
  }
}

function fmt(x: number): string {
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}
