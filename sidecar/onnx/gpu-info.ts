import { execFileSync } from 'node:child_process';

export interface GpuInfo {
  name: string;
  driver: string;
  memoryBytes: number;
  memoryUsedBytes: number;
}

/**
 * The machine's NVIDIA GPUs as nvidia-smi reports them, or undefined when it is not there (no driver:
 * no GPU, or a container started without one). No CUDA library is loaded for this.
 */
export function nvidiaGpus(run: (cmd: string, args: string[]) => string = defaultRun): GpuInfo[] | undefined {
  let out: string;
  try {
    out = run('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,memory.used', '--format=csv,noheader,nounits']);
  } catch {
    return undefined;
  }
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [name, driver, total, used] = l.split(',').map((s) => s.trim());
      return { name, driver, memoryBytes: Number(total) * 2 ** 20, memoryUsedBytes: Number(used) * 2 ** 20 }; // MiB
    });
}

function defaultRun(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
}
