import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * What ONNX Runtime's telemetry leaves behind a process that creates one session, with TMPDIR and HOME
 * in a fresh directory (so that the control run's event store stays out of the real home).
 */
async function telemetryLeftovers(via: 'session.ts' | 'onnxruntime-node'): Promise<string[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-ort-telemetry-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, HOME: tmp };
    delete env.ORT_DISABLE_TELEMETRY; // vitest.config.ts sets it for every test process
    delete env.XDG_CACHE_HOME;
    delete env.CI; // the telemetry stays off by itself where CI is set (as .ci/run sets it)
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/ort-telemetry-child.ts', via], { env });
    expect(stdout.trim()).toBe('2');
    return fs.readdirSync(tmp).filter((name) => name.startsWith('mat-debug-') || name === '.ses' || name === '.cache');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

describe("ONNX Runtime's telemetry", () => {
  it('is off for sessions made through session.ts: no mat-debug-<pid>.log in TMPDIR and no event store in ~/.cache, which a bare onnxruntime-node process leaves', async () => {
    expect(await telemetryLeftovers('onnxruntime-node')).toEqual(expect.arrayContaining([expect.stringMatching(/^mat-debug-\d+\.log$/), '.cache']));
    expect(await telemetryLeftovers('session.ts')).toEqual([]);
  });
});
