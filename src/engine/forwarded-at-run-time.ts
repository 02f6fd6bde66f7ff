import { RootlessOptionError } from '../plan/errors.js'
import type { PortForward } from '../plan/host-ports.js'
import { SANDBOXED_ENV } from '../wire/wire.js'

/**
 * The process-wide list of host ports `forwardHostPort()` registered, and whether a run
 * of ours was configured in this process. On `globalThis` under a registered symbol: the
 * module may be loaded twice in one process (the config's copy and `globalSetup`'s, or
 * ESM and CommonJS), and both must see one list.
 */
interface Registry {
  forwards: PortForward[]
  /** A `rootless()` config or a rootless Jest runner was opened in this process. */
  configured: boolean
  /** Told of each registration: the open runs, which pass it to their running workers. */
  listeners?: Set<(forward: PortForward) => void>
}

const KEY = Symbol.for('vitest-pool-rootless.forwarded-at-run-time')

function registry(): Registry {
  const holder = globalThis as { [KEY]?: Registry }
  return (holder[KEY] ??= { forwards: [], configured: false })
}

/** Called where a run opens: `forwardHostPort()` is then in a run. */
export function markRunConfigured(): void {
  registry().configured = true
}

/** The ports registered so far, each inside port once (the last registration wins). */
export function registeredForwards(): PortForward[] {
  return [...registry().forwards]
}

/**
 * Calls `listener` with each port registered from now on; the returned function stops it.
 * An open run passes them to the workers it started before (a reused worker forwards them
 * from its next reset on).
 */
export function onHostPortRegistered(listener: (forward: PortForward) => void): () => void {
  const listeners = (registry().listeners ??= new Set())
  listeners.add(listener)
  return () => void listeners.delete(listener)
}

const isPort = (port: unknown): port is number => typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535

/**
 * Registers a host port for the sandboxes started from now on (see `forwardHostPort` in
 * the package's entry points). `runnerHere` says whether this process runs tests with
 * a runner that can't have opened a run yet (Jest creates its runner after `globalSetup`).
 */
export function registerHostPort(port: unknown, runnerHere: () => boolean): void {
  const described = `forwardHostPort(${JSON.stringify(port)})`
  const forward = isPort(port)
    ? { inside: port, host: port }
    : typeof port === 'object' && port !== null && Object.keys(port).every((key) => key === 'inside' || key === 'host') && isPort((port as PortForward).inside) && isPort((port as PortForward).host)
      ? { inside: (port as PortForward).inside, host: (port as PortForward).host }
      : undefined
  if (!forward) throw new RootlessOptionError('forwardHostPort', port, 'expects a port from 1 to 65535, or { inside, host } with two such ports')
  if (process.env[SANDBOXED_ENV] === '1') {
    throw new Error(
      `vitest-pool-rootless: ${described} was called inside a test's sandbox, where it can't open anything of the host. Call it in globalSetup, which runs in the Vitest or Jest process on the host, before the sandboxes start.`,
    )
  }
  const state = registry()
  if (!state.configured && !runnerHere()) {
    throw new Error(
      `vitest-pool-rootless: ${described} was called outside a test run with the rootless pool or runner: no sandbox will start in this process to reach the port. Call it in globalSetup of a Vitest config with pool: rootless(), or of a Jest config with runner: 'vitest-pool-rootless/jest'.`,
    )
  }
  state.forwards = [...state.forwards.filter((f) => f.inside !== forward.inside), forward]
  for (const listener of state.listeners ?? []) listener(forward)
}
