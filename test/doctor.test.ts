import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCTOR_EXIT } from '../cli/commands/doctor.ts';
import { nativeBindingDir } from '../sidecar/onnx/session.ts';
import { providerStatuses } from '../sidecar/onnx/provider-status.ts';

// ONNX Runtime also logs each provider library it cannot load ("Failed to load library
// libonnxruntime_providers_shared.so") to stderr; the tests read the thrown errors, so its process-wide
// log stays at fatal here, set before the first session makes ORT's env (issue 19, item 6).
ort.env.logLevel = 'fatal';

// `anole doctor` on this machine: a CPU, no NVIDIA driver, onnxruntime-node installed without its CUDA provider.

const FIXTURE = 'test/fixtures/anole-tiny';
const run = promisify(execFile);
const missingProvider = path.join(nativeBindingDir(), 'libonnxruntime_providers_cuda.so');
let tmp: string;
let cudaBundle: string;

async function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number; lines: string[] }> {
  const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ORT_DISABLE_TELEMETRY: '1' };
  try {
    const { stdout } = await run(process.execPath, ['bin/anole.js', 'doctor', ...args], { env: { ...base, ...env }, timeout: 120_000 });
    return { code: 0, lines: stdout.trimEnd().split('\n') };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    if (typeof err.code !== 'number') throw e;
    return { code: err.code, lines: err.stdout.trimEnd().split('\n') };
  }
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-'));
  cudaBundle = path.join(tmp, 'tiny-cuda');
  await run(process.execPath, ['bin/anole.js', 'convert', '--from', FIXTURE, '--out', cudaBundle, '--dtype', 'fp16', '--target', 'cuda']);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('anole doctor', () => {
  it('says, one line each, the version, every provider and whether it loads, that CUDA is unavailable and why; exit 0', async () => {
    const { code, lines } = await doctor([]);
    expect(code).toBe(DOCTOR_EXIT.ok);
    expect(lines[0]).toMatch(/^onnxruntime-node: 1\.30\.0 \(.*node_modules\/onnxruntime-node\)$/);
    expect(lines).toContain('execution provider cpu: loads');
    expect(lines).toContain(`execution provider cuda: does not load: no CUDA provider libraries: ${missingProvider} is missing`);
    expect(lines.filter((l) => l.startsWith('execution provider ')).map((l) => l.split(':')[0])).toEqual([
      'execution provider cpu',
      'execution provider webgpu',
      'execution provider cuda',
      'execution provider tensorrt',
    ]);
    expect(lines).toContain(`CUDA: unavailable: no CUDA provider libraries: ${missingProvider} is missing`);
    expect(lines).toContain('GPU: none (nvidia-smi not found: no NVIDIA driver here)');
    // what the loader finds, as ldconfig's cache lists it
    const cached = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', env: { PATH: `${process.env.PATH}:/sbin:/usr/sbin` } });
    const cudart = /^\s*(libcudart\.so\.\d+) /m.exec(cached)?.[1];
    const libs = lines.find((l) => l.startsWith('CUDA libraries: '))!;
    if (cudart) expect(libs.split(': ')[1].split(', ')).toContain(cudart);
    else expect(libs).toBe('CUDA libraries: none found (ldconfig cache, LD_LIBRARY_PATH)');
    expect(lines.find((l) => l.startsWith('host memory: '))).toMatch(/^host memory: \d+\.\d\d GiB$/);
  });

  it('ANOLE_REQUIRE_GPU=1: exit 2, saying a worker would refuse to start', async () => {
    const { code, lines } = await doctor([], { ANOLE_REQUIRE_GPU: '1' });
    expect(code).toBe(DOCTOR_EXIT.cudaUnavailable);
    expect(lines.at(-1)).toBe('ANOLE_REQUIRE_GPU=1: a worker would refuse to start here');
  });

  it('--model of a --target cuda bundle: its dtype and target, its memory, and that it cannot run here; exit 2', async () => {
    const { code, lines } = await doctor(['--model', cudaBundle]);
    expect(code).toBe(DOCTOR_EXIT.cudaUnavailable);
    expect(lines).toContain(`model: ${cudaBundle} (bundle), dtype fp16, target cuda`);
    expect(lines.find((l) => l.startsWith('memory at batch 4 '))).toMatch(/^memory at batch 4 \(ANOLE_BATCH_SIZE\): GPU \d+\.\d\d GiB, host \d+\.\d\d GiB \(weights .* \+ KV cache .* for 12 rows × 4096 tokens \+ activations .*\)$/);
    expect(lines).toContain('memory here: host ' + lines.find((l) => l.startsWith('host memory: '))!.slice('host memory: '.length) + ', GPU unknown (no nvidia-smi)');
    expect(lines).toContain(`can run here: no: it targets CUDA, which is unavailable (no CUDA provider libraries: ${missingProvider} is missing)`);
    expect(lines).toContain('CUDA graphs: the decode runs copy nothing between host and device (capturable; ANOLE_CUDA_GRAPH=1 turns it on)');
  });

  it('--model M --run on the CPU: decode steps profiled, nodes per provider, no Memcpy, tokens/s and peak memory; exit 0', async () => {
    const { code, lines } = await doctor(['--model', FIXTURE, '--run', '--steps', '8']);
    expect(code).toBe(DOCTOR_EXIT.ok);
    expect(lines).toContain(`model: ${FIXTURE} (Hugging Face directory), dtype fp32, target cpu`);
    expect(lines).toContain('can run here: yes, on the CPU');
    const runs = lines.filter((l) => l.startsWith('run: '));
    expect(runs[0]).toMatch(/^run: engine v2, 8 tokens in \d+\.\d\d s \(\d+\.\d tokens\/s, prefill included\), peak host memory \d+\.\d\d GiB$/);
    expect(runs[1]).toMatch(/^run: [1-9]\d* nodes ran on CPUExecutionProvider$/);
    expect(runs.slice(2)).toEqual(['run: 0 Memcpy nodes inserted']);
  });

  it('a model that cannot fit this machine at the configured batch: exit 3, naming what it needs', async () => {
    const { code, lines } = await doctor(['--model', FIXTURE], { ANOLE_BATCH_SIZE: '100000' });
    expect(code).toBe(DOCTOR_EXIT.doesNotFit);
    expect(lines.at(-1)).toMatch(/^can run here: no: it needs \d+\.\d\d GiB of host memory, more than 90% of the host's \d+\.\d\d GiB$/);
  });

  it('a CUDA provider library that links libraries missing here: the reason names them (ldd)', async () => {
    const dir = path.join(tmp, 'fake-install');
    const cuda = path.join(tmp, 'fake-cuda');
    fs.mkdirSync(dir);
    fs.mkdirSync(cuda);
    const src = path.join(tmp, 'stub.c');
    fs.writeFileSync(src, 'int anole_stub(void) { return 0; }\n');
    for (const soname of ['libcublasLt.so.13', 'libcudnn.so.9']) execFileSync('gcc', ['-shared', '-fPIC', '-o', path.join(cuda, soname), src, `-Wl,-soname,${soname}`]);
    execFileSync('gcc', ['-shared', '-fPIC', '-o', path.join(dir, 'libonnxruntime_providers_cuda.so'), src, '-Wl,--no-as-needed', `-L${cuda}`, '-l:libcublasLt.so.13', '-l:libcudnn.so.9']);
    fs.rmSync(cuda, { recursive: true }); // built against them, then gone: what a CUDA 12 image gives a CUDA 13 provider
    const cudaStatus = (await providerStatuses({ bindingDir: dir })).find((s) => s.name === 'cuda');
    expect(cudaStatus).toEqual({ name: 'cuda', bundled: false, loads: false, reason: 'libonnxruntime_providers_cuda.so links libraries not found here: libcublasLt.so.13, libcudnn.so.9' });
  });
});
