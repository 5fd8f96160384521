import type { ImageCodec } from '../sidecar/engine/image-codec.ts';
import type { BenchPlan } from './bench-plan.ts';
import { median } from './median.ts';

export interface VQTimes {
  vq_encode_ms: number;
  vq_decode_ms: number;
  /** The first call of each direction, which also creates its ONNX Runtime session. */
  vq_encode_first_ms: number;
  vq_decode_first_ms: number;
}

/**
 * One image through the VQ-VAE each way at the checkpoint's resolution: encode of fixed
 * pseudo-random pixels in [-1, 1] (the image processor's range), decode of the codes that gives.
 * The codec is the caller's, so its warm decoder session serves seconds-per-image afterwards.
 */
export async function measureVQ(codec: ImageCodec, plan: BenchPlan, log: (line: string) => void): Promise<VQTimes> {
  const { inChannels, resolution: R } = codec.vq;
  const pixels = Float32Array.from({ length: inChannels * R * R }, (_, i) => Math.sin(i * 12.9898) * 0.999);
  const time = async (run: () => Promise<unknown>) => {
    const start = performance.now();
    await run();
    return performance.now() - start;
  };
  let codes: Int32Array[] = [];
  const encodeFirst = await time(async () => ({ codes } = await codec.encode(pixels, 1)));
  const encodes: number[] = [];
  for (let i = 0; i < plan.vqReps; i++) encodes.push(await time(() => codec.encode(pixels, 1)));
  const decodeFirst = await time(() => codec.decode(codes));
  const decodes: number[] = [];
  for (let i = 0; i < plan.vqReps; i++) decodes.push(await time(() => codec.decode(codes)));

  const result = { vq_encode_ms: median(encodes), vq_decode_ms: median(decodes), vq_encode_first_ms: encodeFirst, vq_decode_first_ms: decodeFirst };
  log(`VQ ${R}×${R} (${codec.imageSeqLength} codes): encode ${result.vq_encode_ms.toFixed(1)} ms, decode ${result.vq_decode_ms.toFixed(1)} ms ` +
    `(first calls with session creation: ${encodeFirst.toFixed(0)} / ${decodeFirst.toFixed(0)} ms)`);
  return result;
}
