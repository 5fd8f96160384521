/**
 * The API names the value it refused in its error body's `param` (`input.sampling.temperature`) and
 * says why in zod's words (`Too big: expected number to be <=10`). The page shows that at the form's
 * control, in plain words ("must be at most 10"), instead of the path.
 */

/** The form control (its name) that sets a request param, or null when none does. */
export function controlForParam(param: string | null): string | null {
  if (!param) return null;
  if (param === 'input.prompt') return 'prompt';
  if (param === 'input.mode') return 'mode';
  if (param === 'input.images' || /^input\.images\[\d+\]$/.test(param)) return 'images';
  if (param === 'input.max_new_tokens') return 'max_new_tokens';
  if (param === 'input.n') return 'n';
  const sampling = /^input\.sampling\.(temperature|top_p|top_k|seed|repetition_penalty)$/.exec(param);
  if (sampling) return sampling[1];
  const guidance = /^input\.guidance\.(text|image)$/.exec(param);
  if (guidance) return `guidance_${guidance[1]}`;
  return null;
}

const BOUNDS: [RegExp, (n: string) => string][] = [
  [/^Too big: expected number to be <=(\S+)$/, (n) => `must be at most ${n}`],
  [/^Too big: expected number to be <(\S+)$/, (n) => `must be less than ${n}`],
  [/^Too small: expected number to be >=(\S+)$/, (n) => `must be at least ${n}`],
  [/^Too small: expected number to be >(\S+)$/, (n) => `must be more than ${n}`],
  [/^Too big: expected string to have <=(\d+) characters$/, (n) => `must be at most ${n} characters long`],
  [/^Too small: expected string to have >=(\d+) characters?$/, (n) => `must be at least ${n} characters long`],
];

/**
 * Why a value was refused, as words that follow the control's label ("must be at most 10"): zod's
 * phrasing translated, anything else the server's own message without the param it starts with.
 */
export function refusalInWords(serverMessage: string, param: string | null): string {
  const message = param && serverMessage.startsWith(`${param}: `) ? serverMessage.slice(param.length + 2) : serverMessage;
  for (const [pattern, words] of BOUNDS) {
    const m = pattern.exec(message);
    if (m) return words(m[1]);
  }
  if (/^Invalid input: expected int\b/.test(message)) return 'must be a whole number';
  if (/^Invalid input: expected number\b/.test(message)) return 'must be a number';
  if (message === 'required') return 'is required';
  return `: ${message}`;
}

/** The label and the refusal as one sentence: "Temperature must be at most 10." */
export function sentence(label: string, refusal: string): string {
  const text = refusal.startsWith(': ') ? `${label}${refusal}` : `${label} ${refusal}`;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
