import type { CreatePredictionBody } from '../api/schemas.ts';

/**
 * The form as a POST /v1/predictions body. An empty control is left out, so the server's default
 * applies (the controls show those defaults as placeholders); ranges are the server's to check, so
 * its message is the one the user reads.
 */
export interface FormValues {
  prompt: string;
  mode: 'text' | 'image' | 'interleaved';
  numbers: Record<NumberField, number | undefined>;
}

export const NUMBER_FIELDS = ['max_new_tokens', 'n', 'temperature', 'top_p', 'top_k', 'repetition_penalty', 'seed', 'guidance_text', 'guidance_image'] as const;
export type NumberField = (typeof NUMBER_FIELDS)[number];

/** Thrown for what the page can tell at once (an empty prompt, a box that holds no number), with the control it is about. */
export class FormError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'FormError';
  }
}

export function readForm(form: HTMLFormElement): FormValues {
  const prompt = (form.elements.namedItem('prompt') as HTMLTextAreaElement).value;
  const mode = (form.elements.namedItem('mode') as RadioNodeList).value as FormValues['mode'];
  const numbers = {} as FormValues['numbers'];
  for (const name of NUMBER_FIELDS) {
    const input = form.elements.namedItem(name) as HTMLInputElement;
    if (input.validity.badInput) throw new FormError(name, `${input.labels?.[0]?.textContent?.trim() ?? name} must be a number.`);
    numbers[name] = input.value.trim() === '' ? undefined : Number(input.value);
  }
  return { prompt, mode, numbers };
}

/** An empty prompt is refused before anything is sent (the server would run it from nothing); attached images alone are a prompt. */
export function checkPrompt(prompt: string, images: number): void {
  if (prompt.trim() === '' && images === 0) throw new FormError('prompt', 'The prompt is empty: write what you want, or attach an image.');
}

/** Images without a marker in the prompt go first, each with its own marker. */
export function withImageMarkers(prompt: string, images: number, marker: string): string {
  const present = prompt.split(marker).length - 1;
  return present >= images ? prompt : marker.repeat(images - present) + prompt;
}

export function predictionBody(v: FormValues, images: string[], marker: string): CreatePredictionBody {
  const n = v.numbers;
  const defined = <T extends object>(o: T): T | undefined => {
    const kept = Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
    return Object.keys(kept).length > 0 ? (kept as T) : undefined;
  };
  const input: CreatePredictionBody['input'] = {
    prompt: withImageMarkers(v.prompt, images.length, marker),
    mode: v.mode,
    ...(images.length > 0 ? { images } : {}),
    ...(n.max_new_tokens !== undefined ? { max_new_tokens: n.max_new_tokens } : {}),
    ...(n.n !== undefined ? { n: n.n } : {}),
  };
  const sampling = defined({ temperature: n.temperature, top_p: n.top_p, top_k: n.top_k, seed: n.seed, repetition_penalty: n.repetition_penalty });
  const guidance = defined({ text: n.guidance_text, image: n.guidance_image });
  if (sampling) input.sampling = sampling;
  if (guidance) input.guidance = guidance;
  return { input };
}
