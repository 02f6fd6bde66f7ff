import { spawnSync } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { describe, it } from 'vitest'
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

/** A TCP server of this (non-runner) process, and a port nothing listens on. */
export async function hostPorts(): Promise<{ foreign: Server; foreignPort: number; downPort: number }> {
  const listen = async () => {
    const server = createServer((socket) => socket.on('error', () => {}).end('foreign\n'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return server
  }
  const foreign = await listen()
  const down = await listen()
  const downPort = (down.address() as { port: number }).port
  await new Promise((resolve) => down.close(resolve))
  return { foreign, foreignPort: (foreign.address() as { port: number }).port, downPort }
}
