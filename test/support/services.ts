import { spawnSync } from 'node:child_process'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { describeSandbox } from './sandbox.js'

/**
 * The real services the network tests use, on the host's loopback as a CI job runs them
 * (`.ci/run` starts them): PostgreSQL on 5432 (role and database `vpr`, password `vpr`)
 * and Redis on 6379. VITEST_POOL_ROOTLESS_PG_URL names another PostgreSQL on 5432.
 */
export const PG_URL = process.env.VITEST_POOL_ROOTLESS_PG_URL ?? 'postgres://vpr:vpr@127.0.0.1:5432/vpr'

/** CI sets this: services that aren't there fail the suite instead of skipping it. */
const SERVICES_REQUIRED = process.env.VITEST_POOL_ROOTLESS_REQUIRE_SERVICES === '1'

/** Why PostgreSQL or Redis can't be reached on the host's loopback, or undefined. */
export const servicesUnavailable: string | undefined = (() => {
  for (const [name, port] of [['PostgreSQL', 5432], ['Redis', 6379]] as const) {
    // a synchronous connect, from a child: the decision is needed while tests are collected
    const probe = spawnSync(process.execPath, ['-e', `require('net').connect(${port}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`], { timeout: 10_000 })
    if (probe.status !== 0) return `no ${name} on 127.0.0.1:${port} (.ci/run starts one)`
  }
  return undefined
})()

/** `describeSandbox` that also needs the real services: skipped, or failed under CI, without them. */
export function describeWithServices(name: string, body: () => void): void {
  if (!servicesUnavailable) return describeSandbox(name, body)
  if (SERVICES_REQUIRED) {
    describe(name, () => {
      it('needs PostgreSQL and Redis (VITEST_POOL_ROOTLESS_REQUIRE_SERVICES=1)', () => {
        throw new Error(servicesUnavailable)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${servicesUnavailable})`, body)
  }
}

/**
 * For a describe block running the network fixtures: a TCP server of this process (not
 * the runner's: no sandbox may reach it) and a port nothing listens on, made before its
 * tests and closed after them. Returns the environment the fixtures read.
 */
export function networkFixtureEnv(): () => Record<string, string> {
  let foreign: Server | undefined
  let foreignPort = 0
  let downPort = 0
  const listen = async () => {
    const server = createServer((socket) => socket.on('error', () => {}).end('foreign\n'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return server
  }
  beforeAll(async () => {
    foreign = await listen()
    foreignPort = (foreign.address() as AddressInfo).port
    const down = await listen()
    downPort = (down.address() as AddressInfo).port
    await new Promise((resolve) => down.close(resolve))
  })
  afterAll(() => void foreign?.close())
  return () => ({ E2E_PG_URL: PG_URL, E2E_FOREIGN_PORT: String(foreignPort), E2E_DOWN_PORT: String(downPort) })
}
