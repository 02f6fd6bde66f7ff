import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    pool: rootless({ fallback: process.env.E2E_FALLBACK === 'unsandboxed' ? 'unsandboxed' : 'error' }),
  },
})
