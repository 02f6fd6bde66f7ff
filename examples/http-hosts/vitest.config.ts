import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'

export default defineConfig({
  test: {
    include: ['*.test.ts'],
    pool: rootless({
      // written into the sandbox's private /etc/hosts; the host's file is untouched
      hosts: { 'api.example.test': '127.0.0.1' },
      hostname: 'ci-box',
    }),
  },
})
