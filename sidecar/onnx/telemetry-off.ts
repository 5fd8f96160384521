/**
 * onnxruntime-node 1.29+ on Linux starts Microsoft's 1DS telemetry with the first session of a process:
 * it leaves an empty `mat-debug-<pid>.log` in /tmp for every process, keeps an event store under
 * ~/.cache/Microsoft, and tries to upload it. A service with no reason to phone home turns it off,
 * unless the environment already says otherwise.
 *
 * ONNX Runtime reads the process environment itself (getenv) when its first session is created, so
 * this must run in the main thread: a worker thread's process.env is a copy the library never sees.
 * session.ts and engine-thread.ts import it, so it runs in the main thread before any session or
 * engine thread exists; child processes inherit it.
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';
