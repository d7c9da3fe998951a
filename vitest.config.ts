import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Files run in parallel, each in its own database cloned from a migrated template.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
