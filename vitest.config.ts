import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ONNX Runtime sessions are heavy; two cores do not gain from more workers.
    maxWorkers: 2,
    // ONNX Runtime's telemetry off in every test process and what it spawns, also for tests that create
    // sessions or engine threads without loading sidecar/onnx/session.ts (see telemetry-off.ts).
    // The AWS SDK's notice that its releases after January 2027 need Node 22 came once per test file
    // (each re-imports the SDK); the SDK versions are pinned exactly, so it does not apply (cli/main.ts too).
    env: { ORT_DISABLE_TELEMETRY: '1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
