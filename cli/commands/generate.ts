import fs from 'node:fs/promises';
import path from 'node:path';
import { DirectoryBlobStore } from '../../contract/blob-store.ts';
import type { GenerationJob } from '../../contract/job.ts';
import { parseAnoleConfig } from '../../model/config.ts';
import type { GenerationMode } from '../../functions/generation/constraints.ts';
import { prepareJob } from '../../functions/prepare-job.ts';
import { AnoleProcessor } from '../../functions/preprocess/processor.ts';
import { loadRuntime, releaseModel } from '../../sidecar/worker/load-runtime.ts';
import { runJobs, type JobRuntime } from '../../sidecar/worker/run-jobs.ts';
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
  out: string;
}

/**
 * `generate`: the main job on one machine. The functions' half prepares the job (processor,
 * constraints, defaults), the sidecar's half runs it; DIR/result.json gets
 * {token_ids (new tokens), text, images (PNG paths)} of the first sequence, the seed, and `sequences` for all n.
 */
export async function generateCommand(modelDir: string, opts: GenerateOptions): Promise<void> {
  const out = path.resolve(opts.out);
  // Everything a typo or a missing file can fail is checked before the model loads (a 7B model takes
  // a minute): the images are read, the prompt and options made into a job from config.json alone.
  const images = await Promise.all(
    opts.image.map((f) =>
      fs.readFile(f).catch((e: NodeJS.ErrnoException) => {
        throw new Error(`--image ${f}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
      }),
    ),
  );
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
  const runtime = await withProgress('loading the model', () => loadRuntime(modelDir, store));
  try {
    return await generateWith(runtime, job, out, opts);
  } finally {
    await releaseModel(runtime);
  }
}

async function generateWith(runtime: JobRuntime, job: GenerationJob, out: string, opts: GenerateOptions): Promise<void> {
  const bar = progress('generating', job.maxNewTokens * job.n);
  let made = 0;
  let result;
  try {
    for await (const [, event] of runJobs([job], runtime, { chunkSize: opts.chunkSize })) {
      if (opts.stream) process.stdout.write(JSON.stringify(event.type === 'done' ? { type: 'done' } : event) + '\n');
      if (event.type === 'text' || event.type === 'image_rows') bar.update(++made);
      if (event.type === 'done') result = event.result;
    }
  } finally {
    bar.stop();
    await fs.rm(path.join(out, 'inputs'), { recursive: true, force: true });
  }
  const sequences = result!.sequences.map((s) => ({
    token_ids: s.tokenIds,
    text: s.text,
    images: s.parts.filter((p) => p.type === 'image').map((p) => path.join(out, (p as { key: string }).key)),
    finish_reason: s.finishReason,
  }));
  await fs.writeFile(path.join(out, 'result.json'), JSON.stringify({ ...sequences[0], seed: job.seed, sequences }, null, 2));
  if (!opts.stream) process.stdout.write(`${path.join(out, 'result.json')}\n`);
}
