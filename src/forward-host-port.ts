import { registerHostPort } from './engine/forwarded-at-run-time.js'
import { jestRunsHere } from './jest/jest-internals.js'

/**
 * Makes a host port reachable from the sandboxes started from now on, as `hostPorts`
 * makes a port known when the config loads: for ports known only once the run is under
 * way -- a Testcontainers container's published port, a server a `globalSetup` script
 * starts elsewhere. Call it in `globalSetup` (the Vitest or Jest process):
 *
 * ```ts
 * const container = await new GenericContainer('redis').withExposedPorts(6379).start()
 * forwardHostPort(container.getMappedPort(6379))                         // same number inside
 * forwardHostPort({ inside: 6379, host: container.getMappedPort(6379) }) // or another
 * ```
 *
 * Test files started afterwards reach `127.0.0.1:inside` (and `[::1]:inside`) inside;
 * a worker already running (`isolate: false`, a Jest worker) gets it from its next file
 * on, when it resets its sandbox. Throws for a bad port, inside a test's sandbox, and
 * where no run of the rootless pool or runner is configured in this process.
 */
export function forwardHostPort(port: number | { inside: number; host: number }): void {
  registerHostPort(port, jestRunsHere)
}
