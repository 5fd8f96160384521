import type { BlobStore } from '../../contract/blob-store.ts';
import { preparedImage, type GenerationJob, type JobResult, type OutputPart, type SequenceResult } from '../../contract/job.ts';
import type { PredictionEvent } from '../../contract/prediction.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import { spliceImageTokens } from '../engine/splice-image-tokens.ts';
import type { LoadedModel } from './load-model.ts';
import { StopSequences } from './stop-sequences.ts';
import { TextStream } from './text-stream.ts';

/** The events a job's generation produces: the prediction's own (text, image_rows, image), as stored and streamed. */
export type GenerationPredictionEvent = Extract<PredictionEvent, { type: 'text' | 'image_rows' | 'image' }>;

/**
 * What a running job reports: a prediction event (`sequence` is k of the job's n sequences, `image` the
 * image's index in it), with the PNG an image_rows event's preview_key names (the caller stores it under
 * that key) and, for an image, the job's output so far (what an `output` webhook shows); at the end its result.
 */
export type JobUpdate =
  | { type: 'event'; event: GenerationPredictionEvent; preview?: Uint8Array; output?: OutputPart[][] }
  | { type: 'done'; result: JobResult };

export interface RunOptions {
  chunkSize?: number;
  /** A preview every this many finished rows (0 = none): each costs one VQ decode. */
  previewEveryRows?: number;
  /** Per job: stops its sequences at the next chunk boundary. */
  signals?: Map<string, AbortSignal>;
}

/**
 * Runs jobs as one batch on `model`: their images (read from `store`) are encoded to tokens and spliced
 * into the prompts, every sequence of every job shares the generator's chunks, and each finished image is
 * decoded, written to `store` as a PNG (`${outputPrefix}image-{k}-{i}.png`) and reported. Yields [jobId, event]; a
 * job's last event is `done` with its result (the caller records it).
 */
export async function* runJobs(jobs: GenerationJob[], model: LoadedModel, store: BlobStore, opts: RunOptions = {}): AsyncGenerator<[string, JobUpdate]> {
  const started = Date.now();
  const requests: SequenceRequest[] = [];
  const owner: { job: GenerationJob; k: number; stop?: AbortController }[] = [];
  for (const job of jobs) {
    const promptIds = await spliceJobImages(job, model, store);
    for (let k = 0; k < job.n; k++) {
      // a sequence that reached a stop string stops at the engine's next chunk boundary
      const stop = job.stop?.length ? new AbortController() : undefined;
      const jobSignal = opts.signals?.get(job.id);
      owner.push({ job, k, stop });
      requests.push({
        promptIds,
        constraints: job.constraints,
        maxNewTokens: job.maxNewTokens,
        text: job.text,
        image: job.image,
        repetitionPenalty: job.repetitionPenalty,
        presencePenalty: job.presencePenalty ?? 0,
        frequencyPenalty: job.frequencyPenalty ?? 0,
        guidance: job.guidance,
        seed: job.seed + k,
        logitBias: job.logitBias,
        signal: stop ? (jobSignal ? AbortSignal.any([jobSignal, stop.signal]) : stop.signal) : jobSignal,
      });
    }
  }

  const [gridRows] = model.codec.vq.quantStateDims;
  const state = owner.map(({ job }) => ({
    text: new TextStream(model.decodeText),
    stops: new StopSequences(job.stop ?? []),
    parts: [] as OutputPart[],
    images: 0,
    result: undefined as SequenceResult | undefined,
  }));
  const pending = new Map(jobs.map((j) => [j.id, j.n]));

  // a job's predict time leaves out the wait for cache slots (till its first sequence is admitted)
  const handed = Date.now();
  const admitted = new Map<string, number>();
  const onAdmitted = (sequence: number) => void (admitted.has(owner[sequence].job.id) || admitted.set(owner[sequence].job.id, Date.now()));
  const waitedMs = (job: GenerationJob) => (admitted.get(job.id) ?? handed) - handed;
  for await (const event of model.generator.generate(requests, { chunkSize: opts.chunkSize, onAdmitted })) {
    const { job, k, stop } = owner[event.sequence];
    const s = state[event.sequence];
    // after a stop string only the sequence's end matters (the engine may run on to its chunk's end)
    if (s.stops.stopped && event.type !== 'done') continue;
    const text = (delta: string): [string, JobUpdate] => {
      appendText(s.parts, delta);
      return [job.id, { type: 'event', event: { type: 'text', sequence: k, delta } }];
    };
    switch (event.type) {
      case 'text': {
        const delta = s.stops.push(await s.text.push(event.tokens));
        if (s.stops.stopped) stop?.abort();
        if (delta) yield text(delta);
        break;
      }
      case 'image_start': {
        // the text before the image is complete: a character it left unfinished is reported now,
        // before the image, and the text after the image starts a stream of its own
        const tail = s.stops.push(await s.text.flush()) + s.stops.flush(); // a stop string does not span an image
        s.text = new TextStream(model.decodeText);
        if (s.stops.stopped) stop?.abort();
        if (tail) yield text(tail);
        break;
      }
      case 'image_rows': {
        const every = opts.previewEveryRows ?? 0;
        const preview = every > 0 && event.rows < gridRows && event.rows % every === 0
          ? await previewPng(model, event.codes, event.rows)
          : undefined;
        // one key per preview: a later preview must not replace the one an earlier event names
        const previewKey = preview && `${job.outputPrefix}preview-${k}-${s.images}-${event.rows}.png`;
        const rows: GenerationPredictionEvent = { type: 'image_rows', sequence: k, image: s.images, rows: event.rows, total_rows: gridRows, ...(previewKey ? { preview_key: previewKey } : {}) };
        yield [job.id, { type: 'event', event: rows, preview }];
        break;
      }
      case 'image_done': {
        const [png] = await decodeToPng(model, [event.codes]);
        const key = `${job.outputPrefix}image-${k}-${s.images}.png`;
        await store.put(key, png.bytes, 'image/png');
        const part = { type: 'image' as const, key, width: png.width, height: png.height };
        s.parts.push(part);
        const output = owner.flatMap((o, i) => (o.job === job ? [structuredClone(state[i].parts)] : []));
        yield [job.id, { type: 'event', event: { ...part, sequence: k, image: s.images++ }, output }];
        break;
      }
      case 'done': {
        const tail = s.stops.stopped ? '' : s.stops.push(await s.text.flush()) + s.stops.flush();
        if (tail) yield text(tail);
        const joined = s.parts.filter((p) => p.type === 'text').map((p) => (p as { text: string }).text).join('');
        s.result = { tokenIds: event.tokens, text: joined, parts: s.parts, finishReason: s.stops.stopped ? 'stop' : event.reason };
        const left = pending.get(job.id)! - 1;
        pending.set(job.id, left);
        if (left === 0) {
          const sequences = owner.map((o, i) => (o.job === job ? state[i].result! : undefined)).filter((r): r is SequenceResult => !!r);
          const result: JobResult = {
            id: job.id,
            sequences,
            metrics: { predictTimeMs: Date.now() - started - waitedMs(job), generatedTokens: sequences.reduce((n, r) => n + r.tokenIds.length, 0) },
          };
          yield [job.id, { type: 'done', result }];
        }
        break;
      }
    }
  }
}

function appendText(parts: OutputPart[], text: string): void {
  const last = parts[parts.length - 1];
  if (last?.type === 'text') last.text += text;
  else parts.push({ type: 'text', text });
}

/** The job's prompt with each image's placeholders replaced by the image's tokens. */
async function spliceJobImages(job: GenerationJob, model: LoadedModel, store: BlobStore): Promise<number[]> {
  if (job.images.length === 0) return job.promptIds;
  const pixels = await Promise.all(job.images.map(async (key) => preparedImage.decode(await store.get(key))));
  const size = pixels[0].length;
  const batch = new Float32Array(size * pixels.length);
  pixels.forEach((p, i) => batch.set(p, i * size));
  const tokens = await model.codec.encodeTokens(batch, pixels.length);
  return spliceImageTokens(job.promptIds, tokens.map((t) => Array.from(t)), {
    imageTokenId: model.generator.config.imageTokenId,
    imageSeqLength: model.codec.imageSeqLength,
  });
}

async function decodeToPng(model: LoadedModel, codes: number[][], keepRows?: number): Promise<{ bytes: Uint8Array; width: number; height: number }[]> {
  const { outChannels, resolution } = model.codec.vq;
  // Imported at the first image rather than at start: sharp brings libvips, about 19 MB that a worker
  // starting on a cold gp3 volume would otherwise read before ready (0.2–0.3 s of it at 125 MiB/s).
  const { encodePng, postprocess } = await import('../../model/preprocess/image-processor.ts');
  const pixels = await model.codec.decode(codes);
  const images = postprocess(pixels, [codes.length, outChannels, resolution, resolution], model.imageConfig);
  return Promise.all(
    images.map(async (img) => {
      const height = keepRows === undefined ? img.height : (keepRows * img.height) / model.codec.vq.quantStateDims[0];
      const top = { ...img, height, data: img.data.subarray(0, height * img.width * 3) };
      return { bytes: await encodePng(top), width: top.width, height };
    }),
  );
}

/** A preview: the finished rows decoded (the rest filled with the last code), cropped to those rows. */
async function previewPng(model: LoadedModel, codes: number[], finishedRows: number): Promise<Uint8Array> {
  const finished = finishedRows * model.codec.vq.quantStateDims[1];
  const filled = [...codes.slice(0, finished), ...new Array(model.codec.imageSeqLength - finished).fill(codes[finished - 1] ?? 0)];
  const [png] = await decodeToPng(model, [filled], finishedRows);
  return png.bytes;
}
