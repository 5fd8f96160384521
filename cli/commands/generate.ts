import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DirectoryBlobStore, type BlobStore } from '../../contract/blob-store.ts';
import type { GenerationJob } from '../../contract/job.ts';
import { parseAnoleConfig } from '../../model/config.ts';
import type { GenerationMode } from '../../model/constraints.ts';
import { prepareJob } from '../../functions/prepare-job.ts';
import { AnoleProcessor } from '../../model/preprocess/processor.ts';
import { loadModel, releaseModel, type LoadedModel } from '../../sidecar/worker/load-model.ts';
import { runJobs } from '../../sidecar/worker/run-jobs.ts';
import { GenerationProgress } from '../generation-progress.ts';
import { progress, withProgress } from '../progress.ts';

export interface GenerateOptions {
  prompt: string;
  image: string[];
  textCompletion?: boolean;
  mode: GenerationMode;
  maxNewTokens?: number;
  greedy?: boolean;
  n?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  seed?: number;
  guidanceText?: number;
  guidanceImage?: number;
  logitBias: Record<string, number>;
  chunkSize?: number;
  stream?: boolean;
  /** Optional with --stream when no image is made (--mode text). */
  out?: string;
}

/**
 * `generate`: the main job on one machine. The functions' half prepares the job (processor,
 * constraints, defaults), the sidecar's half runs it; DIR/result.json gets
 * {token_ids (new tokens), text, images (PNG paths)} of the first sequence, the seed, and `sequences` for all n.
 */
export async function generateCommand(model: () => Promise<string>, opts: GenerateOptions): Promise<void> {
  if (opts.out === undefined && !opts.stream) throw new Error('generate needs --out DIR (where result.json and the PNGs go), or --stream for the events on stdout');
  if (opts.out === undefined && opts.mode !== 'text') throw new Error(`generate --mode ${opts.mode} makes PNG files: --out DIR says where they go`);
  // A missing image fails before the model is fetched (a Hub id or an s3:// location downloads)
  // and loads (a 7B model takes a minute); the options are checked from config.json, also before the load.
  const images = await Promise.all(
    opts.image.map((f) =>
      fs.readFile(f).catch((e: NodeJS.ErrnoException) => {
        throw new Error(`--image ${f}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
      }),
    ),
  );
  const modelDir = await model();
  // without --out (text streamed on stdout) the input images are staged in a directory of its own, removed at the end
  const out = opts.out === undefined ? await fs.mkdtemp(path.join(os.tmpdir(), 'anole-generate-')) : path.resolve(opts.out);
  try {
    await generateInto(modelDir, images, out, opts);
  } finally {
    if (opts.out === undefined) await fs.rm(out, { recursive: true, force: true });
  }
}

async function generateInto(modelDir: string, images: Uint8Array[], out: string, opts: GenerateOptions): Promise<void> {
  // the job is made (and every option checked) from config.json and the tokenizer alone, then the model loads
  const config = parseAnoleConfig(JSON.parse(await fs.readFile(path.join(modelDir, 'config.json'), 'utf8')));
  const processor = await AnoleProcessor.load(modelDir);
  await fs.mkdir(out, { recursive: true });
  const store = new DirectoryBlobStore(out);
  const job = await prepareJob(
    {
      prompt: opts.prompt,
      images,
      mode: opts.mode,
      textCompletion: opts.textCompletion,
      maxNewTokens: opts.maxNewTokens,
      n: opts.n,
      sampling: {
        temperature: opts.temperature,
        topP: opts.topP,
        topK: opts.topK,
        seed: opts.seed, // random when not given, as the API's
        repetitionPenalty: opts.repetitionPenalty,
        greedy: opts.greedy,
      },
      guidance: { text: opts.guidanceText, image: opts.guidanceImage },
      logitBias: opts.logitBias,
    },
    { id: 'cli', config, processor, store, outputPrefix: '' },
  );
  if (!opts.greedy) process.stderr.write(`seed ${job.seed} (--seed ${job.seed} makes this result again)\n`);
  const loaded = await withProgress('loading the model', () => loadModel(modelDir));
  try {
    return await generateWith(loaded, store, job, out, opts);
  } finally {
    await releaseModel(loaded);
  }
}

async function generateWith(model: LoadedModel, store: BlobStore, job: GenerationJob, out: string, opts: GenerateOptions): Promise<void> {
  const bar = progress('generating', job.maxNewTokens * job.n);
  const stages = new GenerationProgress(job.n, job.maxNewTokens, job.mode);
  let result;
  try {
    for await (const [, update] of runJobs([job], model, store, { chunkSize: opts.chunkSize })) {
      // --stream prints the API's stream events (GET …/stream), field for field; an image's key is its file under --out
      if (opts.stream) process.stdout.write(JSON.stringify(update.type === 'event' ? update.event : { type: 'done', status: 'succeeded' }) + '\n');
      const view = stages.update(update);
      bar.update(view.value, view.total, view.stage);
      if (update.type === 'done') result = update.result;
    }
  } finally {
    bar.stop();
    await fs.rm(path.join(out, 'inputs'), { recursive: true, force: true });
  }
  if (opts.out === undefined) return; // --stream alone: the events were the output
  const sequences = result!.sequences.map((s) => ({
    token_ids: s.tokenIds,
    text: s.text,
    images: s.parts.filter((p) => p.type === 'image').map((p) => path.join(out, (p as { key: string }).key)),
    finish_reason: s.finishReason,
  }));
  await fs.writeFile(path.join(out, 'result.json'), JSON.stringify({ ...sequences[0], seed: job.seed, sequences }, null, 2));
  if (!opts.stream) process.stdout.write(`${path.join(out, 'result.json')}\n`);
}
