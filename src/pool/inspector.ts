import { RootlessOptionError } from '../plan/errors.js'

const WAITING = /^--inspect-(brk|wait)(=|$)/
const LISTENING = /^--inspect(-brk|-wait)?(=|$)/

/**
 * A debugger flag on the Vitest command line opens the inspector inside each worker --
 * on the sandbox's own loopback when the network is isolated, where nothing on the host
 * can reach it. Waiting for a debugger there would hang the run silently: refuse it with
 * what to do. Plain `--inspect` still runs the tests: say once why no debugger connects.
 */
export function checkInspector(argv: readonly string[], network: 'isolated' | 'egress' | 'host', warn: (message: string) => void): void {
  if (network === 'host') return
  const waiting = argv.find((arg) => WAITING.test(arg))
  const fix = "set network: 'host' in rootless() while debugging (e.g. rootless({ network: process.env.VITEST_DEBUG ? 'host' : 'isolated' }))"
  if (waiting) {
    throw new RootlessOptionError('network', network, `can't be used with ${waiting}: the debugger would listen on the sandbox's private 127.0.0.1, unreachable from the host, and the worker would wait for it forever; ${fix}`)
  }
  const listening = argv.find((arg) => LISTENING.test(arg))
  if (listening) warn(`vitest-pool-rootless: ${listening} opens the inspector on the sandbox's private 127.0.0.1 (network: '${network}'): a debugger on the host can't connect; ${fix}.`)
}
