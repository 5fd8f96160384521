import ort from 'onnxruntime-node';
import { cudaUnavailableReason, ortMessage, probeProvider } from './session.ts';

export interface ProviderStatus {
  name: string;
  /** Part of onnxruntime-node's package (cpu, webgpu), or libraries installed beside it (cuda, tensorrt). */
  bundled: boolean;
  loads: boolean;
  /** Why it does not load, one line. */
  reason?: string;
}

/**
 * Every execution provider this onnxruntime-node build knows, each tried with a one-node session on it
 * alone. For CUDA the reason names what is missing: the provider library itself, or the libraries it
 * links that the loader cannot find (ldd), else ONNX Runtime's own error (driver, device).
 */
export async function providerStatuses(opts: { bindingDir?: string } = {}): Promise<ProviderStatus[]> {
  const out: ProviderStatus[] = [];
  for (const { name, bundled } of ort.listSupportedBackends()) {
    let reason: string | undefined;
    if (name === 'cuda') reason = await cudaUnavailableReason(opts);
    else reason = await probeProvider(name).then(() => undefined, (e: Error) => ortMessage(e.message));
    out.push({ name, bundled, loads: reason === undefined, ...(reason ? { reason } : {}) });
  }
  return out;
}
