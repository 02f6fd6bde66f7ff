import { afterEach, describe, expect, it } from 'vitest'
import { markRunConfigured, registeredForwards, registerHostPort } from '../../src/engine/forwarded-at-run-time.js'
import { resolveServices } from '../../src/engine/services.js'
import { rangeForwards } from '../../src/plan/host-ports.js'
import { jestRunsHere } from '../../src/jest/jest-internals.js'
import { SANDBOXED_ENV } from '../../src/wire/wire.js'

// The order matters: the registry is process-wide, and "outside a run" is only true
// until a run is configured in this process.
describe('forwardHostPort', () => {
  afterEach(() => {
    delete process.env[SANDBOXED_ENV]
  })

  it('says so, naming the call, where no run of ours is configured and no Jest runs here', () => {
    expect(() => registerHostPort(5432, () => false)).toThrow('vitest-pool-rootless: forwardHostPort(5432) was called outside a test run with the rootless pool or runner')
    expect(registeredForwards()).toEqual([])
  })

  it('takes the port where Jest runs in this process (its runner comes after globalSetup)', () => {
    registerHostPort(6379, () => true)
    expect(registeredForwards()).toEqual([{ inside: 6379, host: 6379 }])
  })

  it.each([0, 65536, -1, 1.5, '5432', { inside: 1 }, { inside: 1, host: 2, tls: true }, null])('refuses %j, naming forwardHostPort and the value', (port) => {
    markRunConfigured()
    expect(() => registerHostPort(port, () => false)).toThrow(`option \`forwardHostPort\` expects a port from 1 to 65535, or { inside, host } with two such ports, got`)
  })

  it('refuses to run inside a sandbox, saying where to call it', () => {
    process.env[SANDBOXED_ENV] = '1'
    expect(() => registerHostPort(5432, () => true)).toThrow("forwardHostPort(5432) was called inside a test's sandbox")
  })

  it('keeps each inside port once, the last registration winning', () => {
    markRunConfigured()
    registerHostPort({ inside: 5432, host: 32770 }, () => false)
    registerHostPort({ inside: 5432, host: 32771 }, () => false)
    expect(registeredForwards()).toEqual([{ inside: 6379, host: 6379 }, { inside: 5432, host: 32771 }])
  })
})

describe('jestRunsHere', () => {
  it("looks for Jest's core among the loaded modules", () => {
    expect(jestRunsHere({ '/p/node_modules/@jest/core/build/index.js': {} })).toBe(true)
    expect(jestRunsHere({ '/p/node_modules/jest-worker/build/index.js': {}, '/p/src/core/x.js': {} })).toBe(false)
  })
})

describe('resolveServices', () => {
  it("gives each service the host's address, and one error naming the option for a name that doesn't resolve", () => {
    const lookUp = (names: string[]) => names.map((name) => (name === 'db' ? { address: '10.0.0.5' } : { error: 'ENOTFOUND' }))
    expect(resolveServices([{ name: 'db', port: 5432 }], 'hostPorts', lookUp)).toEqual([{ name: 'db', port: 5432, address: '10.0.0.5' }])
    expect(() => resolveServices([{ name: 'db', port: 5432 }, { name: 'cache', port: 6379 }], '--host-port', lookUp)).toThrow(
      /option `--host-port` names a service, but this machine can't resolve "cache" \(ENOTFOUND\).*got "cache:6379"/,
    )
  })
})

describe('rangeForwards', () => {
  it('forwards the served ports inside the ranges at their own numbers, sorted, each once', () => {
    expect(rangeForwards([{ from: 100, to: 200 }, { from: 300, to: 300 }], [99, 300, 150, 100, 201, 150, 200])).toEqual([
      { inside: 100, host: 100 },
      { inside: 150, host: 150 },
      { inside: 200, host: 200 },
      { inside: 300, host: 300 },
    ])
  })
})
