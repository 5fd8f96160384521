import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface LoadFigures {
  /** The child's peak RSS before loading anything (node, tsx, onnxruntime-node). */
  baseline_peak_rss_mb: number;
  /** Peak RSS through openCheckpoint + loadEngine + ImageCodec.load (all sessions the engine needs). */
  load_peak_rss_mb: number;
  /**
   * The same peak from /proc/self/status VmHWM, which counts only the child's own address space:
   * a check on maxRSS, which starts at the parent's RSS when the child is spawned.
   */
  load_vmhwm_mb: number;
  /** RSS once loaded, after the peak. */
  loaded_rss_mb: number;
  load_s: number;
  /** Peak RSS after the first image decode (creates the VQ decoder session, runs it once). */
  first_decode_peak_rss_mb: number;
  first_decode_s: number;
}

const CHILD = fileURLToPath(new URL('./load-child.ts', import.meta.url));
// The child is TypeScript, like the CLI: tsx's ESM loader, found from here rather than the cwd.
const TSX = import.meta.resolve('tsx/esm');

/**
 * Peak RSS of loading a checkpoint, in a fresh child process (process.resourceUsage().maxRSS is a
 * high-water mark, so it must be a process that has loaded nothing else). On Linux the child's
 * maxRSS starts at this process's RSS at spawn, so call this before loading any model here.
 */
export function measureLoad(checkpointDir: string): Promise<LoadFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CHILD, checkpointDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`load-child exited with ${code}`));
      try {
        resolve(JSON.parse(last) as LoadFigures);
      } catch {
        reject(new Error(`load-child printed no JSON line: ${JSON.stringify(stdout.slice(-200))}`));
      }
    });
  });
}
