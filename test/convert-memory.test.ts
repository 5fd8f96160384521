import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `anole convert` checks the bundle's memory estimate before it converts (cli/commands/convert-memory.ts).

const FIXTURE = 'test/fixtures/anole-tiny';
const run = promisify(execFile);
let tmp: string;

async function convert(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['bin/anole.js', 'convert', '--from', FIXTURE, ...args], { env: { ...process.env, ANOLE_MODEL: '' } });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'convert-memory-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('convert checks the memory estimate', () => {
  it('a --target cuda bundle that cannot fit the given GPU even at batch 1 is refused before anything is written', async () => {
    const out = path.join(tmp, 'too-big');
    const r = await convert('--out', out, '--dtype', 'fp16', '--target', 'cuda', '--gpu-memory', '0.5');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      /^anole: a fp16 bundle for cuda cannot run on a 0\.50 GiB GPU and [\d.]+ GiB of host memory even at batch 1: it needs [\d.]+ GiB of GPU memory, more than 90% of the GPU's 0\.50 GiB \(GPU .*\); pick a smaller --dtype, or give the target machine's --gpu-memory \/ --host-memory in GiB$/,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a CPU bundle against too little host memory is refused the same way', async () => {
    const r = await convert('--out', path.join(tmp, 'cpu'), '--host-memory', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/anole: a fp32 bundle for cpu cannot run on 1\.00 GiB of host memory even at batch 1: it needs [\d.]+ GiB of host memory, more than 90% of the host's 1\.00 GiB/);
  });

  it('one that fits converts, saying on stderr its estimate and the largest ANOLE_BATCH_SIZE that fits (a 24 GB GPU by default here)', async () => {
    const out = path.join(tmp, 'fits');
    const r = await convert('--out', out, '--dtype', 'fp16', '--target', 'cuda', '--host-memory', '16');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    expect(r.stderr).toMatch(/memory: GPU [\d.]+ GiB, host [\d.]+ GiB \(weights .*\) at batch 1; on a 22\.50 GiB GPU and 16\.00 GiB of host memory it fits ANOLE_BATCH_SIZE up to \d+/);
  });
});
