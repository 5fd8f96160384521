/**
 * Puts images into a prompt. The processor expands each `<image>` to image_seq_length copies of
 * the placeholder id (config.imageTokenId); Anole's forward does not replace them (unlike
 * Chameleon's), so the caller writes each image's token ids over its run of placeholders, in
 * order, as HF's masked_scatter would.
 */
export function spliceImageTokens(
  inputIds: readonly number[],
  images: readonly (readonly number[])[],
  opts: { imageTokenId: number; imageSeqLength: number },
): number[] {
  const { imageTokenId, imageSeqLength } = opts;
  images.forEach((tokens, i) => {
    if (tokens.length !== imageSeqLength) {
      throw new Error(`image ${i} has ${tokens.length} tokens but image_seq_length is ${imageSeqLength}`);
    }
  });
  const out = [...inputIds];
  let image = 0;
  for (let start = 0; start < out.length; ) {
    if (out[start] !== imageTokenId) {
      start++;
      continue;
    }
    let end = start;
    while (end < out.length && out[end] === imageTokenId) end++;
    if ((end - start) % imageSeqLength !== 0) {
      throw new Error(`a run of ${end - start} <image> placeholders at index ${start} is not a multiple of image_seq_length ${imageSeqLength}`);
    }
    for (let at = start; at < end; at += imageSeqLength) {
      if (image >= images.length) {
        throw new Error(`the prompt has more <image> placeholder runs than the ${images.length} image(s) given`);
      }
      out.splice(at, imageSeqLength, ...images[image++]);
    }
    start = end;
  }
  if (image !== images.length) {
    throw new Error(`${images.length} image(s) given but the prompt has placeholders for ${image}`);
  }
  return out;
}
