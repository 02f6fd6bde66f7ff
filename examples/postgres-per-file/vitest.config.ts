import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    // every file starts its own PostgreSQL on 127.0.0.1:5432 -- four at once, no clash
    maxWorkers: 4,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: rootless(),
  },
})
