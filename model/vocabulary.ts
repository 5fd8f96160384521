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

export function imageVocabulary(config: AnoleConfig): ImageVocabulary {
  const n = config.vq.numEmbeddings;
  const codeToToken = new Int32Array(n).fill(-1);
  const tokenToCode = new Int32Array(config.vocabSize).fill(-1);
  const entries = Object.entries(config.vocabularyMap).filter(([name]) => name.startsWith('IMGIMG'));
  if (entries.length === 0) {
    // No vocabulary_map in config.json: the layout every public Chameleon vocabulary uses.
    for (let code = 0; code < n; code++) codeToToken[code] = code + 4;
  } else {
    for (const [name, id] of entries) {
      const digits = name.slice(6, -1);
      const code = Number([...digits].map((ch) => ch.charCodeAt(0) - 65).join(''));
      if (!/^[A-J]+$/.test(digits) || code >= n) throw new Error(`vocabulary_map: ${name} is not an image token name`);
      codeToToken[code] = id;
    }
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
