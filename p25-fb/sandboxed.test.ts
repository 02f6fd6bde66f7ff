import { expect, it } from 'vitest'
import { sandboxed } from 'vitest-pool-rootless/runtime'

it('knows whether it runs in a sandbox', () => {
  expect(sandboxed).toBe(process.env.E2E_EXPECT_SANDBOXED !== '0')
})

it.runIf(sandboxed)('is root in its sandbox, under the init of its own pid namespace', () => {
  expect(process.getuid!()).toBe(0)
  expect(process.ppid).toBe(1)
})
