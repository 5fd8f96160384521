import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ONNX Runtime sessions are heavy; two cores do not gain from more workers.
    maxWorkers: 2,
  },
});
