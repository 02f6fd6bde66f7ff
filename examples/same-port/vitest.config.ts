import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    // all ten files at once; each has a network namespace of its own
    fileParallelism: true,
    maxWorkers: 10,
    pool: rootless(),
  },
})
