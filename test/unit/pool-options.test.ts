import { describe, expect, it } from 'vitest'
import { RootlessOptionError } from '../../src/ns/errors.js'
import { rootless } from '../../src/pool/index.js'

describe('rootless(): options are checked when the config loads', () => {
  it('returns a pool runner named "rootless"', () => {
    const pool = rootless({ warm: 0 })
    expect(pool.name).toBe('rootless')
    expect(typeof pool.createPoolWorker).toBe('function')
  })

  it.each([
    [{ warm: -1 }, 'warm', '-1'],
    [{ warm: 1.5 }, 'warm', '1.5'],
    [{ warm: 65 }, 'warm', '65'],
    [{ warm: '2' }, 'warm', '"2"'],
    [{ bogus: true }, 'bogus', 'true'],
    [{ hostname: 'a b' }, 'hostname', '"a b"'],
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
    expect(() => rootless({ wram: 1 } as never)).toThrow(/known options are .*warm/)
  })
})
