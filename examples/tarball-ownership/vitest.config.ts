import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    // each test file runs as uid 0 with ids 1..N mapped, so chown to 1000 or 54321 works
    pool: rootless(),
  },
})
