import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GenerationProgress, type ProgressView } from '../cli/generation-progress.ts';
import { DirectoryBlobStore } from '../contract/blob-store.ts';
import { prepareJob } from '../functions/prepare-job.ts';
import { AnoleProcessor } from '../model/preprocess/processor.ts';
import { loadModel, releaseModel } from '../sidecar/worker/load-model.ts';
import { runJobs } from '../sidecar/worker/run-jobs.ts';

/**
 * `generate`'s progress bar (issue 19, item 7) follows the image rows of a real run on the tiny
 * fixture (a 4-row grid, n = 2) and shows the VQ decode as a stage of its own, rather than counting
 * events against the token budget (it sat at 32/1026 for a whole image).
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-progress-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('generate progress', () => {
  it('an image advances row by row to a full bar, then "decoding (VQ)" until each PNG is there', async () => {
    const model = await loadModel(FIXTURE, { thread: false, intraOpNumThreads: 1 });
    try {
      const store = new DirectoryBlobStore(tmp);
      const processor = await AnoleProcessor.load(FIXTURE);
      const job = await prepareJob({ prompt: 'a cat', mode: 'image', n: 2, sampling: { seed: 4 } }, { id: 'p', config: model.generator.config, processor, store, outputPrefix: '' });
      const stages = new GenerationProgress(job.n, job.maxNewTokens, job.mode);
      const seen: { event: string; view: ProgressView }[] = [];
      for await (const [, update] of runJobs([job], model, store)) seen.push({ event: update.type === 'done' ? 'done' : update.event.type, view: { ...stages.update(update) } });

      const [gridRows] = model.codec.vq.quantStateDims;
      const rows = seen.filter((s) => s.view.stage === 'image 1: rows' && s.event === 'image_rows').map((s) => s.view);
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((v) => v.total === 2 * gridRows)).toBe(true); // both sequences' rows
      expect(rows.map((v) => v.value)).toEqual([...rows.map((v) => v.value)].sort((a, b) => a - b));
      expect(rows[rows.length - 1].value).toBeLessThan(2 * gridRows); // the last row switches to the decode stage

      // the last row of the batch starts the decode stage: 0 of 2, then 1 of 2 after the first PNG
      const firstImage = seen.findIndex((s) => s.event === 'image');
      expect(seen[firstImage - 1].view).toEqual({ stage: 'decoding image 1 (VQ)', value: 0, total: 2 });
      expect(seen[firstImage].view).toEqual({ stage: 'decoding image 1 (VQ)', value: 1, total: 2 });
      expect(seen.filter((s) => s.event === 'image')).toHaveLength(2);
      expect(seen[seen.length - 1].event).toBe('done');
    } finally {
      await releaseModel(model);
    }
  });
});
