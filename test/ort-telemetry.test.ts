import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/** What a process that creates one session leaves in its temporary directory (TMPDIR, a fresh one). */
async function leftInTmp(via: 'session.ts' | 'onnxruntime-node'): Promise<string[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-ort-telemetry-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    delete env.ORT_DISABLE_TELEMETRY; // vitest.config.ts sets it for every test process
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/ort-telemetry-child.ts', via], { env });
    expect(stdout.trim()).toBe('2');
    return fs.readdirSync(tmp).filter((name) => name.startsWith('mat-debug-') || name === '.ses');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

describe("ONNX Runtime's telemetry", () => {
  it('is off for sessions made through session.ts: no mat-debug-<pid>.log in the temporary directory, which a bare onnxruntime-node process leaves', async () => {
    expect(await leftInTmp('onnxruntime-node')).toContainEqual(expect.stringMatching(/^mat-debug-\d+\.log$/));
    expect(await leftInTmp('session.ts')).toEqual([]);
  });
});
