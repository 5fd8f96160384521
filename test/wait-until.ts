/**
 * Waits for a state rather than for a guessed time: polls `cond` every `intervalMs` until it holds,
 * and fails naming `what` after `timeoutMs` (a hang guard, not a timing assertion).
 */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition', intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
