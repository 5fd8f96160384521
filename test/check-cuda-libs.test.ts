import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeBindingDir } from '../sidecar/onnx/session.ts';

// sidecar/check-cuda-libs.sh, the worker image's build-time check, against tiny shared libraries made here with gcc
// (`.ci/run` installs gcc when missing): "CUDA libraries" that are empty but carry the real sonames, and "provider
// libraries" that link them by soname, as libonnxruntime_providers_cuda.so does.

const SCRIPT = 'sidecar/check-cuda-libs.sh';
let tmp: string;
let cudaLibs: string; // what the "image" has: CUDA 13 (and an old CUDA 12 runtime beside it), cuDNN 9

function sharedLibrary(file: string, soname: string | undefined, links: string[] = [], code = 'int anole_stub(void) { return 0; }\n'): void {
  const src = path.join(tmp, 'stub.c');
  fs.writeFileSync(src, code);
  const args = ['-shared', '-fPIC', '-o', file, src, ...(soname ? [`-Wl,-soname,${soname}`] : [])];
  // --no-as-needed keeps a NEEDED entry for every library named, though the stub calls none of them
  args.push('-Wl,--no-as-needed', `-L${cudaLibs}`, ...links.map((l) => `-l:${l}`));
  execFileSync('gcc', args, { stdio: 'pipe' });
}

/** A provider library linking `links`, in a directory of its own (as onnxruntime-node's bin/ is). */
function provider(name: string, links: string[]): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const file = path.join(dir, 'libonnxruntime_providers_cuda.so');
  sharedLibrary(file, undefined, links);
  return file;
}

function check(lib: string, env: Record<string, string> = {}, args: string[] = []) {
  const r = spawnSync('bash', [SCRIPT, lib, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LD_LIBRARY_PATH: cudaLibs, CUDA_VERSION: '13.0.1', NV_CUDNN_VERSION: '9.13.0.50-1', ...env },
  });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cuda-libs-'));
  cudaLibs = path.join(tmp, 'cuda');
  fs.mkdirSync(cudaLibs);
  for (const soname of ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcudart.so.12', 'libcudnn.so.9', 'libcudnn.so.8']) {
    sharedLibrary(path.join(cudaLibs, soname), soname);
  }
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('check-cuda-libs.sh (the worker image refuses provider libraries its CUDA cannot load)', () => {
  it('passes a provider linking the image\'s CUDA 13 and cuDNN 9, all found', () => {
    const lib = provider('match', ['libcudart.so.13', 'libcublasLt.so.13', 'libcublas.so.13', 'libcudnn.so.9']);
    const r = check(lib);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`check-cuda-libs: ok: ${lib} links CUDA 13 and cuDNN 9, every library found`);
  });

  it('fails a provider built for CUDA 12 in a CUDA 13 image, naming the library and both majors', () => {
    const lib = provider('cuda12', ['libcudart.so.12', 'libcudnn.so.9']);
    const r = check(lib);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`check-cuda-libs: ${lib}: libcudart.so.12 is built for CUDA 12, the image has CUDA 13`);
  });

  it('the same CUDA 13 provider fails in a CUDA 12 image (the old base image), its majors read from CUDA_VERSION', () => {
    const lib = provider('cuda13-in-12', ['libcudart.so.13', 'libcudnn.so.9']);
    const r = check(lib, { CUDA_VERSION: '12.8.1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`check-cuda-libs: ${lib}: libcudart.so.13 is built for CUDA 13, the image has CUDA 12`);
  });

  it('fails when a linked library is not found, naming it', () => {
    // linked at build time, then gone from the "image": what ldd reports as not found
    const gone = path.join(cudaLibs, 'libcufft.so.12');
    sharedLibrary(gone, 'libcufft.so.12');
    const lib = provider('missing', ['libcudart.so.13', 'libcufft.so.12', 'libcudnn.so.9']);
    fs.rmSync(gone);
    const r = check(lib);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`check-cuda-libs: ${lib}: not found: libcufft.so.12`);
  });

  it('leaves the driver\'s libcuda.so.1 to run time (the NVIDIA container toolkit mounts it), saying so', () => {
    const driver = path.join(cudaLibs, 'libcuda.so.1');
    sharedLibrary(driver, 'libcuda.so.1');
    const lib = provider('driver', ['libcudart.so.13', 'libcuda.so.1', 'libcudnn.so.9']);
    fs.rmSync(driver);
    const r = check(lib);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`check-cuda-libs: ok: ${lib} links CUDA 13 and cuDNN 9, every library found (from the driver, mounted at run time: libcuda.so.1)`);
  });

  it("fails a provider calling a function the image's library lacks (built against a newer minor), naming it", () => {
    // the provider is linked against a libcublasLt.so.13 with cublasLtNewer; the image's has only the older functions
    const newer = path.join(tmp, 'newer');
    fs.mkdirSync(newer);
    const lt = path.join(cudaLibs, 'libcublasLt.so.13');
    const older = fs.readFileSync(lt);
    sharedLibrary(lt, 'libcublasLt.so.13', [], 'int cublasLtNewer(void) { return 1; }\nint cublasLtCreate(void) { return 0; }\n');
    const lib = path.join(newer, 'libonnxruntime_providers_cuda.so');
    sharedLibrary(lib, undefined, ['libcudart.so.13', 'libcublasLt.so.13', 'libcudnn.so.9'], 'int cublasLtNewer(void);\nint cublasLtCreate(void);\nint anole_stub(void) { return cublasLtNewer() + cublasLtCreate(); }\n');
    fs.writeFileSync(lt, older); // back to the image's library, which has neither function
    const r = check(lib);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`check-cuda-libs: ${lib}: calls functions the image's CUDA / cuDNN libraries lack (built against newer minors?): cublasLtCreate cublasLtNewer`);
  });

  it('fails a cuDNN major the image lacks', () => {
    const lib = provider('cudnn8', ['libcudart.so.13', 'libcudnn.so.8']);
    const r = check(lib);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`check-cuda-libs: ${lib}: libcudnn.so.8 is cuDNN 8, the image has cuDNN 9`);
  });

  it('fails a library that links no CUDA at all (the real CPU libonnxruntime.so.1 of this install)', () => {
    const lib = path.join(nativeBindingDir(), 'libonnxruntime.so.1');
    expect(fs.existsSync(lib)).toBe(true);
    const r = check(lib);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      `check-cuda-libs: ${lib}: links no CUDA runtime (libcudart.so.N or libcublas.so.N): not a CUDA provider library?`,
      `check-cuda-libs: ${lib}: links no cuDNN (libcudnn.so.N)`,
    ]);
  });

  it('refuses to guess the image\'s majors: without CUDA_VERSION or --cuda-major it fails; the flags override the variables', () => {
    const lib = provider('flags', ['libcudart.so.13', 'libcudnn.so.9']);
    const r = check(lib, { CUDA_VERSION: '', NV_CUDNN_VERSION: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the image's CUDA major is unknown: set CUDA_VERSION/);
    expect(check(lib, { CUDA_VERSION: '', NV_CUDNN_VERSION: '' }, ['--cuda-major', '13', '--cudnn-major', '9']).code).toBe(0);
    expect(check(lib, {}, ['--cuda-major', '12']).stderr).toMatch(/libcudart\.so\.13 is built for CUDA 13, the image has CUDA 12$/);
    expect(check(path.join(tmp, 'nothing.so')).stderr).toBe(`check-cuda-libs: ${path.join(tmp, 'nothing.so')}: missing`);
  });
});
