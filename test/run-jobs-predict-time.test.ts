import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryBlobStore } from '../contract/blob-store.ts';
import { DEFAULT_SAMPLING } from '../contract/generation-request.ts';
import type { GenerationJob, JobResult } from '../contract/job.ts';
import { compileConstraints, type GenerationMode } from '../model/constraints.ts';
import { loadModel, releaseModel, type LoadedModel } from '../sidecar/worker/load-model.ts';
import { runJobs } from '../sidecar/worker/run-jobs.ts';

/**
 * A job's predict time (what a user is billed by) is its own work: a job that waits for cache slots
 * while another holds them all is billed from the moment its sequence takes its slots. Real engine
 * (the tiny fixture) with room for one guided sequence (3 slots), real store.
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-predict-time-'));
let model: LoadedModel;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { thread: false, intraOpNumThreads: 1, maxSlots: 3 });
});
afterAll(async () => {
  await releaseModel(model);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function job(id: string, mode: GenerationMode, maxNewTokens: number, guided: boolean): GenerationJob {
  const c = model.generator.config;
  return {
    id, promptIds: [c.bosTokenId, 16900, 8710], images: [], mode, constraints: compileConstraints(c, mode, [c.eosTokenId]), maxNewTokens, n: 1, seed: 1,
    text: DEFAULT_SAMPLING.text, image: DEFAULT_SAMPLING.image, repetitionPenalty: 1,
    guidance: guided ? DEFAULT_SAMPLING.guidance : { text: 1, image: 1 }, logitBias: { [c.boiTokenId]: -100 }, outputPrefix: `${id}/`,
  };
}

async function run(j: GenerationJob, onFirstEvent = () => {}): Promise<{ result: JobResult; wallMs: number }> {
  const start = Date.now();
  let first = true;
  for await (const [, update] of runJobs([j], model, new DirectoryBlobStore(tmp))) {
    if (first) onFirstEvent();
    first = false;
    if (update.type === 'done') return { result: update.result, wallMs: Date.now() - start };
  }
  throw new Error(`${j.id} ended without a result`);
}

describe('predict time', () => {
  it('leaves out the wait for cache slots: a job queued behind one holding every slot is billed from its admission', async () => {
    // a guided interleaved job holds all 3 slots for 300 tokens; a text job arrives as it streams
    let queued: Promise<{ result: JobResult; wallMs: number }> | undefined;
    const holder = await run(job('holder', 'interleaved', 300, true), () => (queued ??= run(job('queued', 'text', 4, false))));
    const waiter = await queued!;
    expect(holder.result.metrics.generatedTokens).toBe(300);
    expect(waiter.result.metrics.generatedTokens).toBe(4);
    // the queued job waited for most of the holder's run: its wall time holds that wait, its predict time not
    expect(waiter.wallMs).toBeGreaterThan(holder.wallMs / 2);
    expect(waiter.result.metrics.predictTimeMs).toBeLessThan(waiter.wallMs / 4);
    // a job that never waited is billed its whole run
    expect(holder.result.metrics.predictTimeMs).toBeGreaterThan(holder.wallMs * 0.9);
  });
});
