import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    // starts redis-server as a child process, on a random port: no option reaches it
    globalSetup: ['./global-setup.ts'],
    pool: rootless(),
  },
})
