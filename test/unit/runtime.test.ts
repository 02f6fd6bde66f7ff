import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SANDBOXED_ENV } from '../../src/wire/wire.js'
import { ROOT } from '../support/sandbox.js'

const require = createRequire(import.meta.url)
const RUNTIME = join(ROOT, 'dist', 'runtime.cjs')

describe('vitest-pool-rootless/runtime', () => {
  it('reads the variable the engine sets', () => {
    expect(readFileSync(join(ROOT, 'src', 'runtime.cts'), 'utf8')).toContain(`const SANDBOXED_ENV = '${SANDBOXED_ENV}'`)
  })

  it('says sandboxed only where the engine said so', () => {
    delete require.cache[RUNTIME]
    const saved = process.env[SANDBOXED_ENV]
    try {
      delete process.env[SANDBOXED_ENV]
      expect((require(RUNTIME) as { sandboxed: boolean }).sandboxed).toBe(false)
      delete require.cache[RUNTIME]
      process.env[SANDBOXED_ENV] = '1'
      expect((require(RUNTIME) as { sandboxed: boolean }).sandboxed).toBe(true)
    } finally {
      delete require.cache[RUNTIME]
      if (saved === undefined) delete process.env[SANDBOXED_ENV]
      else process.env[SANDBOXED_ENV] = saved
    }
  })

  it('has the named export an ES module import finds (CommonJS export detection)', async () => {
    const module = (await import(RUNTIME)) as { sandboxed?: unknown }
    expect(typeof module.sandboxed).toBe('boolean')
  })
})
