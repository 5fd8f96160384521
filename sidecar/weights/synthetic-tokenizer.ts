/**
 * A synthetic Chameleon/Anole tokenizer with the real id layout (test/fixtures/README.md, "Tokenizer";
 * the real text_tokenizer.json is only distributed by Meta and the HF Hub):
 *
 *   0..3            <s> <pad> </s> <unk>
 *   4..4+n-1        image tokens IMGIMG + code digits spelt A..J + Z   (n = VQ codebook size, 8192)
 *   4+n, 5+n        <eoss> (end of image), <racm3:break> (begin of image)
 *   ..16387         <reservedNNNNN>, NNNNN = id − 4; <reserved08707> is renamed <image> as the HF converter does
 *   16388..         byte-level BPE text: the 256 byte symbols, then a handful of merges
 *   ..vocab_size−1  filler no input can reach
 *
 * Everything from 16388 on is invented. The output is the content of tokenizer.json,
 * tokenizer_config.json and special_tokens_map.json as HF's LlamaTokenizerFast saves them.
 */

const FIRST_TEXT_ID = 16388;
const IMAGE_PLACEHOLDER = '<image>';
const RENAMED_RESERVED = '<reserved08707>';
const SEP_TOKEN = '<reserved08706>';

/**
 * A few English merges in byte-level spelling (Ġ is the space byte), enough that common words are
 * not all single bytes. Each merge's parts must already exist when it is reached.
 */
const MERGES: [string, string][] = [
  ['Ġ', 't'], ['h', 'e'], ['Ġ', 'a'], ['Ġt', 'he'], ['i', 'n'], ['e', 'r'], ['a', 'n'], ['Ġ', 's'],
  ['Ġ', 'o'], ['r', 'e'], ['o', 'n'], ['Ġ', 'i'], ['a', 't'], ['e', 'n'], ['Ġo', 'f'], ['Ġa', 'n'],
  ['Ġan', 'd'], ['i', 's'], ['Ġi', 's'], ['o', 'r'], ['Ġ', 'w'], ['Ġ', 'c'], ['in', 'g'], ['Ġs', 'e'],
];

export interface SyntheticTokenizer {
  /** Token name → id for all vocab_size ids (what config.json stores as vocabulary_map). */
  vocab: Record<string, number>;
  tokenizerJson: object;
  tokenizerConfig: object;
  specialTokensMap: object;
}

export function syntheticTokenizer(opts: { vocabSize: number; imageTokens: number }): SyntheticTokenizer {
  const names = vocabularyNames(opts.vocabSize, opts.imageTokens);
  const vocab: Record<string, number> = {};
  names.forEach((name, id) => (vocab[name] = id));

  const special = names.map((name, id) => ({ name, id })).filter(({ name }) => isSpecial(name));
  const addedToken = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map(({ name, id }) => ({ id, ...addedToken(name), special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    // What LlamaTokenizerFast.update_post_processor installs for add_bos_token=True, add_eos_token=False.
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES,
    },
  };

  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    add_prefix_space: null,
    added_tokens_decoder: Object.fromEntries(special.map(({ name, id }) => [String(id), { ...addedToken(name), special: true }])),
    bos_token: '<s>',
    boi_token: '<racm3:break>',
    clean_up_tokenization_spaces: false,
    eoi_token: '<eoss>',
    eos_token: '</s>',
    extra_special_tokens: { image_token: IMAGE_PLACEHOLDER, boi_token: '<racm3:break>', eoi_token: '<eoss>' },
    image_token: IMAGE_PLACEHOLDER,
    legacy: false,
    model_max_length: 1e30, // HF's VERY_LARGE_INTEGER: no limit
    pad_token: '<pad>',
    processor_class: 'AnoleProcessor',
    sep_token: SEP_TOKEN,
    tokenizer_class: 'LlamaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  };

  const specialTokensMap = {
    boi_token: '<racm3:break>',
    bos_token: addedToken('<s>'),
    eoi_token: '<eoss>',
    eos_token: addedToken('</s>'),
    image_token: IMAGE_PLACEHOLDER,
    pad_token: addedToken('<pad>'),
    sep_token: addedToken(SEP_TOKEN),
    unk_token: addedToken('<unk>'),
  };

  return { vocab, tokenizerJson, tokenizerConfig, specialTokensMap };
}

/** Names in id order. */
function vocabularyNames(vocabSize: number, imageTokens: number): string[] {
  const names = ['<s>', '<pad>', '</s>', '<unk>'];
  for (let code = 0; code < imageTokens; code++) names.push(imageTokenName(code));
  names.push('<eoss>', '<racm3:break>');
  if (names.length > FIRST_TEXT_ID) throw new Error(`${imageTokens} image tokens do not fit below the text ids (${FIRST_TEXT_ID})`);
  while (names.length < FIRST_TEXT_ID) {
    const reserved = `<reserved${String(names.length - 4).padStart(5, '0')}>`;
    names.push(reserved === RENAMED_RESERVED ? IMAGE_PLACEHOLDER : reserved);
  }
  names.push(...byteSymbols());
  for (const [a, b] of MERGES) {
    if (!names.includes(a) || !names.includes(b)) throw new Error(`merge ${a} ${b} uses a token that does not exist yet`);
    names.push(a + b);
  }
  if (names.length > vocabSize) throw new Error(`vocab_size ${vocabSize} is too small for the Chameleon id layout (needs ${names.length})`);
  // U+2400 never comes out of the byte-level alphabet, so no input can reach these.
  for (let i = 0; names.length < vocabSize; i++) names.push(`␀unused${String(i).padStart(5, '0')}`);
  return names;
}

/** Code 53 → IMGIMGFDZ: the decimal digits spelt with letters A..J, then Z. */
export function imageTokenName(code: number): string {
  return `IMGIMG${[...String(code)].map((d) => String.fromCharCode(65 + Number(d))).join('')}Z`;
}

function isSpecial(name: string): boolean {
  return name.startsWith('<') && name.endsWith('>') && name.length > 2;
}

/**
 * GPT-2's byte → printable character table (bytes_to_unicode), in byte order: printable Latin-1
 * bytes map to themselves, the others to U+0100 onwards (so the space byte is Ġ).
 */
function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0x100;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : next++));
}
