/**
 * A signal that aborts when `parent` does or after `ms` (reason: a TimeoutError), and `clear()` to
 * stop its timer once the work is done.
 *
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 the composite holds the timeout
 * signal weakly, so a garbage collection before the deadline takes it and the composite never aborts
 * (nodejs/node#57736). A stream meant to end after maxStreamSeconds then ran on. Here the timer holds
 * the controller.
 */
export function abortAfter(ms: number, parent: AbortSignal): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const onParent = () => controller.abort(parent.reason);
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  if (parent.aborted) onParent();
  else parent.addEventListener('abort', onParent, { once: true });
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    },
  };
}
