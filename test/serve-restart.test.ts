import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServe, type ServedProcess } from './serve-harness.ts';

/**
 * `npm start` killed with jobs still queued (issue 18, item 4): the local queue is durable in the data
 * directory, so after a restart on the same ANOLE_DATA_DIR every prediction runs to a terminal state.
 */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-restart-'));
const started: ServedProcess[] = [];
afterAll(async () => {
  for (const s of started) await s.stop(5000);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const TERMINAL = ['succeeded', 'failed', 'canceled', 'aborted'];

describe('anole serve after SIGKILL', () => {
  it('resumes the jobs that were queued: every prediction ends', async () => {
    const first = await startServe({ ANOLE_DATA_DIR: dataDir });
    started.push(first);
    const ids = await Promise.all(
      Array.from({ length: 30 }, async (_, k) => {
        const res = await fetch(`${first.url}/v1/predictions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ input: { prompt: `picture ${k}`, mode: 'image', sampling: { seed: k } } }),
        });
        expect(res.status).toBe(201);
        return ((await res.json()) as { id: string }).id;
      }),
    );
    const statuses = await Promise.all(ids.map(async (id) => ((await (await fetch(`${first.url}/v1/predictions/${id}`)).json()) as { status: string }).status));
    first.child.kill('SIGKILL');
    await first.exited;
    const unfinished = statuses.filter((s) => !TERMINAL.includes(s)).length;
    expect(unfinished).toBeGreaterThan(0); // otherwise this test would prove nothing

    const second = await startServe({ ANOLE_DATA_DIR: dataDir });
    started.push(second);
    const until = Date.now() + 150_000; // 30 jobs on a loaded 2-core machine
    let last: string[] = [];
    let records: { status: string; error: string | null }[] = [];
    while (Date.now() < until) {
      records = await Promise.all(ids.map(async (id) => (await (await fetch(`${second.url}/v1/predictions/${id}`)).json()) as { status: string; error: string | null }));
      last = records.map((r) => r.status);
      if (last.every((s) => TERMINAL.includes(s))) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const stuck = ids.filter((_, k) => !TERMINAL.includes(last[k]));
    expect(stuck, `${stuck.join(' ')} did not end; the second run said:\n${second.stderr.join('\n')}`).toEqual([]);
    const notSucceeded = records.filter((r) => r.status !== 'succeeded');
    expect(notSucceeded, JSON.stringify(notSucceeded.slice(0, 3))).toEqual([]);
  }, 300_000);
});
