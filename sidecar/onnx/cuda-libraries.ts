import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The libraries ONNX Runtime's CUDA provider needs from CUDA and cuDNN (the driver's libcuda.so.1 aside). */
const CUDA_LIBRARY = /^lib(cudart|cublas|cublasLt|cufft|curand|cudnn)\.so\.\d+$/;

/**
 * The CUDA and cuDNN libraries the dynamic loader can find: ldconfig's cache and the directories of
 * LD_LIBRARY_PATH (what dlopen searches), as sonames, e.g. libcudart.so.13.
 */
export function findCudaLibraries(env: NodeJS.ProcessEnv = process.env): string[] {
  const found = new Set<string>();
  try {
    const cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...env, PATH: `${env.PATH ?? ''}:/sbin:/usr/sbin` } });
    for (const line of cache.split('\n')) {
      const soname = line.trim().split(/\s/)[0];
      if (CUDA_LIBRARY.test(soname)) found.add(soname);
    }
  } catch {
    // no ldconfig (macOS, musl): LD_LIBRARY_PATH only
  }
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    try {
      for (const f of fs.readdirSync(dir)) if (CUDA_LIBRARY.test(f)) found.add(f);
    } catch {
      // a listed directory that does not exist
    }
  }
  return [...found].sort();
}

/**
 * The libraries a shared library links that the loader cannot find (ldd's "not found"), resolving its
 * neighbours from its own directory as ONNX Runtime does; undefined when ldd cannot tell (no ldd).
 */
export function missingLinkedLibraries(library: string, env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const dir = path.dirname(library);
  let out: string;
  try {
    out = execFileSync('ldd', [library], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, LD_LIBRARY_PATH: [dir, env.LD_LIBRARY_PATH].filter(Boolean).join(':') } });
  } catch {
    return undefined;
  }
  return [...new Set(out.split('\n').map((l) => /^\s*(\S+) => not found/.exec(l)?.[1]).filter((s): s is string => !!s))].sort();
}
