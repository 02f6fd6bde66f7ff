import { defineConfig } from 'vitest/config'

// The project's own tests. They drive the launcher, the CLI and real Vitest runs as
// child processes, so they run under the stock `forks` pool.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // fixtures are projects of their own, run by the e2e tests through real Vitest
    exclude: ['test/fixtures/**', '**/node_modules/**', '.e2e/**'],
    globalSetup: ['test/support/global-setup.ts'],
    // e2e tests run whole Vitest projects; their own timers (150 s a run) fire first
    testTimeout: 200_000,
    hookTimeout: 120_000,
    // e2e files start whole Vitest runs; two at once is what 2 cores take
    maxWorkers: 2,
  },
})
