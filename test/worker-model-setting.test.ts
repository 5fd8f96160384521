import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { modelLocationFromEnv } from '../sidecar/worker/worker-config.ts';

// A worker serves only the model it is given: without ANOLE_MODEL it refuses to start, rather than
// serving the random tiny model that `npx anole serve` defaults to.

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'worker-model-setting-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the worker model setting', () => {
  it('modelLocationFromEnv: ANOLE_MODEL as given; unset or empty is an error naming ANOLE_MODEL', () => {
    expect(modelLocationFromEnv({ ANOLE_MODEL: 's3://models/anole/' })).toBe('s3://models/anole/');
    expect(() => modelLocationFromEnv({})).toThrow(/^ANOLE_MODEL is not set: the worker serves only the model it is given/);
    expect(() => modelLocationFromEnv({ ANOLE_MODEL: '' })).toThrow(/^ANOLE_MODEL is not set/);
  });

  it('`anole worker` without ANOLE_MODEL: exit 1, one line naming ANOLE_MODEL, and no default model made', async () => {
    const closed = 'http://127.0.0.1:9'; // nothing may be contacted before the check
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ANOLE_QUEUE_URL: `${closed}/000000000000/jobs`,
      ANOLE_SQS_ENDPOINT: closed,
      ANOLE_S3_ENDPOINT: closed,
      ANOLE_HEALTH_PORT: '0',
    };
    // run from an empty directory: the tiny default would appear there as .cache/models/tiny
    const r = await run(process.execPath, [path.resolve('bin/anole.js'), 'worker'], { env, cwd: tmp, timeout: 60_000 }).then(
      (out) => ({ code: 0, ...out }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^anole: ANOLE_MODEL is not set: [^\n]*\n$/);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});
