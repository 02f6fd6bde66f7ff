import { spawnSync } from 'node:child_process'
import { describe, it } from 'vitest'
import { describeSandbox } from './sandbox.js'

/**
 * The "outside" the network: 'egress' tests reach, made on this machine by
 * scripts/outside-network.sh (`.ci/run` runs it): an HTTP server at 198.18.0.2:8080 in a
 * network namespace of its own, and the name outside.vpr.test, which only the host's
 * resolver knows (dnsmasq there).
 */
export const OUTSIDE_URL = 'http://198.18.0.2:8080'

/** CI sets this: an outside that isn't there fails the suite instead of skipping it. */
const OUTSIDE_REQUIRED = process.env.VITEST_POOL_ROOTLESS_REQUIRE_OUTSIDE === '1'

/** Why the outside can't be reached from this process, or undefined. */
export const outsideUnavailable: string | undefined = (() => {
  // from a child, synchronously: the decision is needed while tests are collected
  const script = `
    const dns = require('node:dns')
    require('node:http').get('${OUTSIDE_URL}/hello', { timeout: 3000 }, (res) => {
      dns.lookup('outside.vpr.test', (error, address) => process.exit(error || address !== '198.18.0.2' ? 2 : 0))
    }).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))`
  const probe = spawnSync(process.execPath, ['-e', script], { timeout: 15_000 })
  if (probe.status === 0) return undefined
  const what = probe.status === 2 ? "the host's resolver doesn't know outside.vpr.test" : `no server at ${OUTSIDE_URL}`
  return `${what} (sudo scripts/outside-network.sh up --resolver makes the outside; .ci/run does)`
})()

/** `describeSandbox` that also needs the outside: skipped, or failed under CI, without it. */
export function describeWithOutside(name: string, body: () => void): void {
  if (!outsideUnavailable) return describeSandbox(name, body)
  if (OUTSIDE_REQUIRED) {
    describe(name, () => {
      it('needs the outside network (VITEST_POOL_ROOTLESS_REQUIRE_OUTSIDE=1)', () => {
        throw new Error(outsideUnavailable)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${outsideUnavailable})`, body)
  }
}
