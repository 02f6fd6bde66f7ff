/**
 * Loaded first (by inside/entry.ts) in every sandboxed process with a network of its own
 * (isolated or egress): failures that the sandbox causes get words that say so, instead
 * of reading like a flaky network or a port clash with some unknown process.
 *
 * - Isolated only: the first name that fails to resolve (ENOTFOUND: it is not in the
 *   sandbox's hosts file, and no DNS is reachable inside) prints one notice naming
 *   `hosts` and `network`; the runner shows the first process's and drops the others'.
 *   The error itself is untouched: tests that expect ENOTFOUND still get it. Under
 *   egress the host's resolvers answer, and their ENOTFOUND means what it says.
 * - A server that can't listen on a port forwarded to the host (`hostPorts`, or one of
 *   the runner's own ports) gets its EADDRINUSE message extended with why.
 */
import dns from 'node:dns'
import { syncBuiltinESMExports } from 'node:module'
import net from 'node:net'
import { FORWARDED_PORTS_ENV, NETWORK_ENV, ONCE_PER_RUN_MARK } from '../wire/wire.js'

const forwarded = new Set((process.env[FORWARDED_PORTS_ENV] ?? '').split(',').filter(Boolean).map(Number))
let noticed = false

function notice(hostname: unknown): void {
  if (noticed) return
  noticed = true
  process.stderr.write(
    `vitest-pool-rootless: ${JSON.stringify(hostname)} ${ONCE_PER_RUN_MARK}: only the sandbox's hosts file is read, and no DNS server is reachable with network: 'isolated'. ` +
      `Give the name an address with the \`hosts\` option (e.g. hosts: { ${JSON.stringify(String(hostname))}: '127.0.0.1' } and a server of your own), or use network: 'host' for the real one. Said once per run.\n`,
  )
}

const isNotFound = (error: unknown) => (error as NodeJS.ErrnoException | null)?.code === 'ENOTFOUND'

if (process.env[NETWORK_ENV] !== 'egress') {
  const lookup = dns.lookup
  dns.lookup = function (this: unknown, hostname: string, ...rest: unknown[]) {
    const at = rest.findIndex((arg) => typeof arg === 'function')
    if (at !== -1) {
      const callback = rest[at] as (error: unknown, ...results: unknown[]) => void
      rest[at] = function (this: unknown, error: unknown, ...results: unknown[]) {
        if (isNotFound(error)) notice(hostname)
        return callback.call(this, error, ...results)
      }
    }
    return (lookup as (...args: unknown[]) => unknown).call(this, hostname, ...rest)
  } as typeof dns.lookup

  const promisesLookup = dns.promises.lookup
  dns.promises.lookup = async function (this: unknown, ...args: Parameters<typeof promisesLookup>) {
    try {
      return await promisesLookup.apply(this, args)
    } catch (error) {
      if (isNotFound(error)) notice(args[0])
      throw error
    }
  } as typeof promisesLookup
}

if (forwarded.size > 0) {
  // every net (and http, https) server emits its listen error through here
  const emit = net.Server.prototype.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean
  net.Server.prototype.emit = function (this: net.Server, event: string | symbol, ...args: unknown[]) {
    const error = args[0] as (NodeJS.ErrnoException & { port?: number }) | undefined
    if (event === 'error' && error?.code === 'EADDRINUSE' && error.port !== undefined && forwarded.has(error.port) && !error.message.includes('vitest-pool-rootless')) {
      error.message += ` -- in this sandbox, port ${error.port} leads to the host's (vitest-pool-rootless: \`hostPorts\`, or a port the test runner itself listens on, \`runnerPorts\`): listen on another port, or take ${error.port} out of them`
    }
    return emit.call(this, event, ...args)
  } as typeof net.Server.prototype.emit
}

// `import { lookup } from 'node:dns'` in a test sees the wrapped one too
syncBuiltinESMExports()
