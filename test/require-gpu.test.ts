import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeBindingDir } from '../sidecar/onnx/session.ts';
import { loadModel } from '../sidecar/worker/load-model.ts';
import { gpuRequirement } from '../sidecar/worker/require-gpu.ts';

// No silent CPU: the worker, as the image runs it (`anole worker`), on this machine without CUDA.

const FIXTURE = 'test/fixtures/anole-tiny';
const run = promisify(execFile);
let tmp: string;
let cudaBundle: string;

async function anole(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const closed = 'http://127.0.0.1:9'; // nothing may be contacted before the check
  const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ORT_DISABLE_TELEMETRY: '1' };
  const queue = { ANOLE_QUEUE_URL: `${closed}/000000000000/jobs`, ANOLE_SQS_ENDPOINT: closed, ANOLE_S3_ENDPOINT: closed, ANOLE_HEALTH_PORT: '0' };
  try {
    const r = await run(process.execPath, ['bin/anole.js', ...args], { env: { ...base, ...queue, ...env }, timeout: 120_000 });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'require-gpu-'));
  cudaBundle = path.join(tmp, 'tiny-cuda');
  const r = await anole(['convert', '--from', FIXTURE, '--out', cudaBundle, '--dtype', 'fp16', '--target', 'cuda'], {});
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const missingProvider = path.join(nativeBindingDir(), 'libonnxruntime_providers_cuda.so');

describe('a worker refuses to start a model that cannot fit this machine', () => {
  it('ANOLE_BATCH_SIZE beyond what the host holds: exit 1, one line with the estimate and the largest batch that fits', async () => {
    const r = await anole(['worker'], { ANOLE_MODEL: FIXTURE, ANOLE_BATCH_SIZE: '100000' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      new RegExp(`^anole: ${FIXTURE} \\(fp32 for cpu\\) does not fit this machine at batch 100000: it needs [\\d.]+ GiB of host memory, more than 90% of the host's [\\d.]+ GiB; estimate: host .*; set ANOLE_BATCH_SIZE to \\d+ or less, or use a smaller bundle\n$`),
    );
  });
});

describe('a worker that must run on CUDA refuses to start without it', () => {
  it('gpuRequirement: ANOLE_REQUIRE_GPU=1 or a --target cuda bundle; a CPU model without the variable needs none', () => {
    expect(gpuRequirement(FIXTURE, {})).toBeUndefined();
    expect(gpuRequirement(FIXTURE, { ANOLE_REQUIRE_GPU: '0' })).toBeUndefined();
    expect(gpuRequirement(FIXTURE, { ANOLE_REQUIRE_GPU: '1' })).toBe('ANOLE_REQUIRE_GPU=1');
    expect(gpuRequirement(cudaBundle, {})).toBe(`${cudaBundle} is a --target cuda bundle`);
  });

  it('ANOLE_REQUIRE_GPU=1 (as the worker image sets it): exit 1, one line naming the missing provider library', async () => {
    const r = await anole(['worker'], { ANOLE_MODEL: FIXTURE, ANOLE_REQUIRE_GPU: '1' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`anole: CUDA is required (ANOLE_REQUIRE_GPU=1) but cannot run: no CUDA provider libraries: ${missingProvider} is missing\n`);
  });

  it('loadModel refuses it too (the path `anole serve` takes, in process), before any session exists', async () => {
    await expect(loadModel(cudaBundle, { thread: false })).rejects.toThrow(
      `CUDA is required (${cudaBundle} is a --target cuda bundle) but cannot run: no CUDA provider libraries: ${missingProvider} is missing`,
    );
  });

  it('a --target cuda bundle: exit 1 with the same kind of line, without any variable set', async () => {
    const r = await anole(['worker'], { ANOLE_MODEL: cudaBundle });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`anole: CUDA is required (${cudaBundle} is a --target cuda bundle) but cannot run: no CUDA provider libraries: ${missingProvider} is missing\n`);
  });
});
