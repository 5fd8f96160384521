import { describe, expect, it } from 'vitest';
import type { AnoleConfig } from '../model/config.ts';
import { imageVocabulary } from '../model/vocabulary.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';

const config = openCheckpoint('test/fixtures/anole-tiny').config!;
const withMap = (vocabularyMap: Record<string, number>): AnoleConfig => ({ ...config, vocabularyMap });

/** HF's img2bpe: the name's middle letters A..J are the code's decimal digits. */
function hfCode(name: string): number {
  return Number([...name.slice(6, -1)].map((ch) => String.fromCharCode(ch.charCodeAt(0) - 65 + 48)).join(''));
}

describe('imageVocabulary', () => {
  it("reads every IMGIMG name of vocabulary_map as HF's img2bpe does", () => {
    const { codeToToken, tokenToCode, firstId, lastId } = imageVocabulary(config);
    const images = Object.entries(config.vocabularyMap).filter(([name]) => name.startsWith('IMGIMG'));
    expect(images.length).toBe(config.vq.numEmbeddings);
    for (const [name, id] of images) {
      expect(codeToToken[hfCode(name)]).toBe(id);
      expect(tokenToCode[id]).toBe(hfCode(name));
    }
    expect([firstId, lastId]).toEqual([Math.min(...codeToToken), Math.max(...codeToToken)]);
    expect(tokenToCode[config.boiTokenId]).toBe(-1);
  });

  it('is built once per config object; a copy of the config gets equal tables', () => {
    expect(imageVocabulary(config)).toBe(imageVocabulary(config));
    const copy = withMap({ ...config.vocabularyMap });
    expect(imageVocabulary(copy)).not.toBe(imageVocabulary(config));
    expect(imageVocabulary(copy)).toEqual(imageVocabulary(config));
  });

  it('falls back to code + 4 without image names, and refuses names it cannot read or a missing code', () => {
    expect(Array.from(imageVocabulary(withMap({ '<s>': 0 })).codeToToken.slice(0, 3))).toEqual([4, 5, 6]);
    const images = Object.fromEntries(Object.entries(config.vocabularyMap).filter(([name]) => name.startsWith('IMGIMG')));
    expect(() => imageVocabulary(withMap({ ...images, IMGIMGAKZ: 9 }))).toThrow('vocabulary_map: IMGIMGAKZ is not an image token name');
    expect(() => imageVocabulary(withMap({ ...images, IMGIMGZ: 9 }))).toThrow('IMGIMGZ is not an image token name');
    const [first] = Object.keys(images);
    const { [first]: _, ...withoutFirst } = images;
    expect(() => imageVocabulary(withMap(withoutFirst))).toThrow(`vocabulary_map has no image token for code ${hfCode(first)}`);
  });
});
