import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    // every test file gets its own mount namespace, so its mounts vanish with it
    pool: rootless(),
  },
})
