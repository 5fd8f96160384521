/**
 * Memory of the GPU instance types this stack is meant for: the GPU's as nvidia-smi reports it (a "24 GB"
 * L4 or A10G shows 23034 / 23028 MiB, an L40S 46068 MiB) and the instance's nominal host memory (the OS
 * sees about 0.7 GiB less). What the README's instance table and test/infra-memory.test.ts reckon with.
 */
export const GPU_INSTANCES: Record<string, { gpu: string; gpuGiB: number; hostGiB: number }> = {
  'g6.xlarge': { gpu: 'L4', gpuGiB: 22.5, hostGiB: 16 },
  'g6.2xlarge': { gpu: 'L4', gpuGiB: 22.5, hostGiB: 32 },
  'g5.xlarge': { gpu: 'A10G', gpuGiB: 22.5, hostGiB: 16 },
  'g5.2xlarge': { gpu: 'A10G', gpuGiB: 22.5, hostGiB: 32 },
  'g6e.xlarge': { gpu: 'L40S', gpuGiB: 45, hostGiB: 32 },
  'g6e.2xlarge': { gpu: 'L40S', gpuGiB: 45, hostGiB: 64 },
};

/** The host memory the OS of an instance reports: nominal less what the firmware and kernel keep. */
export const HOST_USABLE_SHARE = 0.95;

/** The bundle the README tells a deployer to upload for the default instance type (`anole convert --dtype int4 --target cuda`). */
export const DEFAULT_BUNDLE = { dtype: 'int4', target: 'cuda' } as const;
