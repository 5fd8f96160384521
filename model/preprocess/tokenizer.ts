import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from 'tokenizers';
import { CheckpointError } from '../checkpoint-error.ts';

/**
 * The checkpoint's tokenizer.json through HF's own Rust `tokenizers` (the Node binding), plus
 * the special tokens the processor and generation need. Ids are resolved from the token strings
 * in tokenizer_config.json / special_tokens_map.json, never from config.json: config.json's
 * bos_token_id says 1, but the vocabulary has `<s>` = 0 (docs/model.md §1.1).
 */

export interface SpecialTokens<T> {
  bos: T;
  pad: T;
  eos: T;
  /** End of turn, appended to every chat-mode prompt (HF `sep_token`). */
  sep: T;
  /** The placeholder repeated image_seq_length times per image. */
  image: T;
  /** Begin of image (`<racm3:break>`). */
  boi: T;
  /** End of image (`<eoss>`). */
  eoi: T;
}

// What leloy/Anole-7b-v0.1-hf and the 2025 conversion write; used when a file does not say.
const DEFAULT_SPECIAL_TOKENS: SpecialTokens<string> = {
  bos: '<s>',
  pad: '<pad>',
  eos: '</s>',
  sep: '<reserved08706>',
  image: '<image>',
  boi: '<racm3:break>',
  eoi: '<eoss>',
};

const CONFIG_KEYS: Record<keyof SpecialTokens<string>, string> = {
  bos: 'bos_token',
  pad: 'pad_token',
  eos: 'eos_token',
  sep: 'sep_token',
  image: 'image_token',
  boi: 'boi_token',
  eoi: 'eoi_token',
};

export class AnoleTokenizer {
  readonly specialTokens: SpecialTokens<string>;
  readonly specialIds: SpecialTokens<number>;
  private readonly tokenizer: Tokenizer;

  private constructor(tokenizer: Tokenizer, specialTokens: SpecialTokens<string>, specialIds: SpecialTokens<number>) {
    this.tokenizer = tokenizer;
    this.specialTokens = specialTokens;
    this.specialIds = specialIds;
  }

  /** Loads `<dir>/tokenizer.json` and resolves the special tokens; checks that encoding prepends BOS. */
  static async load(dir: string): Promise<AnoleTokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(file)) throw new CheckpointError(file, 'missing: the tokenizer needs tokenizer.json');
    let tokenizer: Tokenizer;
    try {
      tokenizer = Tokenizer.fromFile(file);
    } catch (e) {
      throw new CheckpointError(file, `cannot load tokenizer: ${(e as Error).message}`);
    }
    const specialTokens = readSpecialTokens(dir);
    const specialIds = {} as SpecialTokens<number>;
    for (const role of Object.keys(specialTokens) as (keyof SpecialTokens<string>)[]) {
      const id = tokenizer.tokenToId(specialTokens[role]);
      if (id === null || id === undefined) {
        throw new CheckpointError(file, `${CONFIG_KEYS[role]} ${JSON.stringify(specialTokens[role])} is not in the vocabulary`);
      }
      specialIds[role] = id;
    }
    // The processor relies on the post-processor adding BOS (LlamaTokenizerFast add_bos_token).
    const probe = (await tokenizer.encode('')).getIds();
    if (probe[0] !== specialIds.bos) {
      throw new CheckpointError(file, `encoding does not start with BOS ${specialTokens.bos} (${specialIds.bos}): got [${probe}]`);
    }
    return new AnoleTokenizer(tokenizer, specialTokens, specialIds);
  }

  /** Ids of `text`, BOS first (unless addSpecialTokens is false). Special token strings in the text become their ids. */
  async encode(text: string, options: { addSpecialTokens?: boolean } = {}): Promise<number[]> {
    const encoding = await this.tokenizer.encode(text, null, { addSpecialTokens: options.addSpecialTokens ?? true });
    return encoding.getIds();
  }

  async encodeBatch(texts: string[], options: { addSpecialTokens?: boolean } = {}): Promise<number[][]> {
    const encodings = await this.tokenizer.encodeBatch(texts, { addSpecialTokens: options.addSpecialTokens ?? true });
    return encodings.map((e) => e.getIds());
  }

  /** Text of `ids`; by default special tokens (BOS, pad, sep, image, boi, eoi…) are dropped. */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    return this.tokenizer.decode(ids, options.skipSpecialTokens ?? true);
  }

  batchDecode(ids: number[][], options: { skipSpecialTokens?: boolean } = {}): Promise<string[]> {
    return this.tokenizer.decodeBatch(ids, options.skipSpecialTokens ?? true);
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.tokenToId(token) ?? undefined;
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.idToToken(id) ?? undefined;
  }

  get vocabSize(): number {
    return this.tokenizer.getVocabSize(true);
  }
}

/**
 * Special token strings: special_tokens_map.json over tokenizer_config.json (and its
 * `extra_special_tokens`, where the 2025 conversion puts image/boi/eoi) over the defaults.
 * Entries are strings or AddedToken dicts `{content: …}`.
 */
function readSpecialTokens(dir: string): SpecialTokens<string> {
  const tokens = { ...DEFAULT_SPECIAL_TOKENS };
  for (const name of ['tokenizer_config.json', 'special_tokens_map.json']) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) continue;
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new CheckpointError(file, `not valid JSON: ${(e as Error).message}`);
    }
    const extra = (raw.extra_special_tokens ?? {}) as Record<string, unknown>;
    for (const role of Object.keys(tokens) as (keyof SpecialTokens<string>)[]) {
      const key = CONFIG_KEYS[role];
      const value = tokenContent(raw[key]) ?? tokenContent(extra[key]);
      if (value !== undefined) tokens[role] = value;
    }
  }
  return tokens;
}

function tokenContent(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry && typeof entry === 'object' && typeof (entry as { content?: unknown }).content === 'string') {
    return (entry as { content: string }).content;
  }
  return undefined;
}
