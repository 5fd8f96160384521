import type { AnoleConfig } from './config.ts';

/**
 * The image-token vocabulary: every name starting with IMGIMG is one VQ code, spelt as the
 * code's decimal digits with letters A..J and a final character (IMGIMGFDZ → 53). In the
 * released vocabulary id = code + 4, but the table is built from the names, as HF does.
 */
export interface ImageVocabulary {
  /** img2bpe[code] = token id */
  codeToToken: Int32Array;
  /** token id → code, or -1 for a non-image token */
  tokenToCode: Int32Array;
  /** Smallest and largest image token id (the image ids form this contiguous range when firstId + n - 1 = lastId). */
  firstId: number;
  lastId: number;
}

const built = new WeakMap<AnoleConfig, ImageVocabulary>();

/**
 * The image vocabulary of a config, built once per config object: callers ask for it at every
 * model load and every request (constraints), and building it walks all 65,536 names of
 * vocabulary_map (docs/benchmarks.md, "Vocabulary tables and constraints built once"). The tables
 * are shared: read them, never write them.
 */
export function imageVocabulary(config: AnoleConfig): ImageVocabulary {
  let vocabulary = built.get(config);
  if (!vocabulary) built.set(config, (vocabulary = buildImageVocabulary(config)));
  return vocabulary;
}

function buildImageVocabulary(config: AnoleConfig): ImageVocabulary {
  const n = config.vq.numEmbeddings;
  const codeToToken = new Int32Array(n).fill(-1);
  const tokenToCode = new Int32Array(config.vocabSize).fill(-1);
  let names = 0;
  for (const name in config.vocabularyMap) {
    if (!name.startsWith('IMGIMG')) continue;
    names++;
    const code = imageCode(name);
    if (code === undefined || code >= n) throw new Error(`vocabulary_map: ${name} is not an image token name`);
    codeToToken[code] = config.vocabularyMap[name];
  }
  if (names === 0) {
    // No vocabulary_map in config.json: the layout every public Chameleon vocabulary uses.
    for (let code = 0; code < n; code++) codeToToken[code] = code + 4;
  } else {
    const missing = codeToToken.indexOf(-1);
    if (missing >= 0) throw new Error(`vocabulary_map has no image token for code ${missing} (expected ${n} IMGIMG entries)`);
  }
  let firstId = Infinity;
  let lastId = -1;
  codeToToken.forEach((id, code) => {
    tokenToCode[id] = code;
    firstId = Math.min(firstId, id);
    lastId = Math.max(lastId, id);
  });
  return { codeToToken, tokenToCode, firstId, lastId };
}

/** IMGIMG + the code's decimal digits spelt A..J + one final character (IMGIMGFDZ → 53); undefined if not so spelt. */
function imageCode(name: string): number | undefined {
  if (name.length < 8) return undefined;
  let code = 0;
  for (let i = 6; i < name.length - 1; i++) {
    const digit = name.charCodeAt(i) - 65;
    if (digit < 0 || digit > 9) return undefined;
    code = code * 10 + digit;
  }
  return code;
}
