import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const FIXTURE = 'test/fixtures/anole-tiny';

describe('loadModel', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-load-model-'));
    fs.cpSync(FIXTURE, path.join(dir, 'no-tokenizer'), { recursive: true });
    fs.rmSync(path.join(dir, 'no-tokenizer', 'tokenizer.json'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  // The tokenizer loads while the engine thread starts: when it fails, the thread that did start
  // must go too, or the process would never exit.
  it('fails with the tokenizer error and leaves no engine thread running when tokenizer.json is missing', () => {
    const child = ['--import', 'tsx', 'test/load-model-child.ts', path.join(dir, 'no-tokenizer')];
    const run = spawnSync(process.execPath, child, { encoding: 'utf8', timeout: 30_000 });
    expect(run.signal, 'the process did not exit on its own').toBeNull();
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toMatch(/^failed: .*tokenizer\.json: missing/);
  });

  it('stops the engine thread as soon as the tokenizer fails, without waiting for the model to load', async () => {
    const { EngineThread } = await import('../sidecar/engine/engine-thread.ts');
    const stop = new AbortController();
    const started = EngineThread.start(FIXTURE, { intraOpNumThreads: 1 }, { signal: stop.signal });
    stop.abort(new Error('the tokenizer failed'));
    await expect(started).rejects.toThrow('the tokenizer failed');
    // and a thread that starts is unaffected by a signal that never fires
    const engine = await EngineThread.start(FIXTURE, { intraOpNumThreads: 1 }, { signal: new AbortController().signal });
    await engine.generator.release();
  });
});
