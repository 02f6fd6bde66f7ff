import { describe, expect, it, vi } from 'vitest'
import { RootlessOptionError } from '../../src/plan/errors.js'
import { rootless, type RootlessPool } from '../../src/pool/index.js'

/** The pool runner `rootless()` gives on a machine that can build the sandbox. */
function runner(pool: RootlessPool) {
  if (typeof pool === 'string') throw new Error(`rootless() fell back to ${pool}`)
  return pool
}

describe('rootless(): options are checked when the config loads', () => {
  it('returns a pool runner named "rootless"', () => {
    const pool = runner(rootless({ warm: 0 }))
    expect(pool.name).toBe('rootless')
    expect(typeof pool.createPoolWorker).toBe('function')
  })

  it.each([
    [{ warm: -1 }, 'warm', '-1'],
    [{ warm: 1.5 }, 'warm', '1.5'],
    [{ warm: 65 }, 'warm', '65'],
    [{ warm: '2' }, 'warm', '"2"'],
    [{ hostname: 'a b' }, 'hostname', '"a b"'],
    [{ hostname: 'a...' }, 'hostname', '"a..."'],
    [{ hostsFile: '/proc/self/mem' }, 'hostsFile', '"/proc/self/mem"'],
    [{ tmpfs: ['/proc'] }, 'tmpfs', '"/proc"'],
    [{ tmpfsSize: '9999999999999999g' }, 'tmpfsSize', '"9999999999999999g"'],
    [{ fallback: 'skip' }, 'fallback', '"skip"'],
    // a mistake in the config is never a reason to run unsandboxed
    [{ tmpfs: ['/usr'], fallback: 'unsandboxed' }, 'tmpfs', '"/usr"'],
  ])('%j is refused, naming the option and the value', (options, option, shown) => {
    let error: unknown
    try {
      rootless(options as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(RootlessOptionError)
    expect((error as RootlessOptionError).option).toBe(option)
    expect((error as Error).message).toContain(`option \`${option}\``)
    expect((error as Error).message).toContain(`got ${shown}`)
  })

  it('lists warm among the known options when a key is unknown', () => {
    expect(() => rootless({ wram: 1 } as never)).toThrow(/`wram` is not an option; did you mean `warm`\? The options are .*warm/)
  })

  it('accepts a hostname with "_", as hosts names may have', () => {
    expect(runner(rootless({ hostname: 'x_y', warm: 0 })).name).toBe('rootless')
  })

  it('prints each warning once, when the config loads', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      rootless({ tmpfs: false, warm: 0 })
      const printed = write.mock.calls.map(([text]) => String(text))
      expect(printed.filter((t) => t.includes('no private temp dir'))).toHaveLength(1)
    } finally {
      write.mockRestore()
    }
  })
})
