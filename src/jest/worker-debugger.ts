import { url as inspectorUrl } from 'node:inspector'
import { checkPublishable } from '../engine/published-port.js'
import type { SandboxRun } from '../engine/run.js'
import { INSPECT_ENV, type InspectRequest } from '../wire/wire.js'

const WAITING = /^--inspect-(brk|wait)(=|$)/
let said = false

/**
 * Jest's documented recipe, `node --inspect-brk node_modules/.bin/jest -i`, debugs the
 * Jest process -- where Jest's own runner runs the files in band. Here the files run in
 * a sandboxed worker: it opens an inspector of its own at the Jest process's port + 1
 * (as Node's cluster numbers its workers), published to the host at that address, and
 * waits there for a debugger when the Jest process did. VS Code's debug terminal attaches
 * to the worker by itself (its bootloader comes with NODE_OPTIONS): nothing to do then.
 * What the worker is launched with; undefined without a debugger.
 */
export function workerDebugger(run: SandboxRun): { publish: number; env: Record<string, string> } | undefined {
  const url = inspectorUrl()
  if (!url || run.options.network === 'host' || process.env.VSCODE_INSPECTOR_OPTIONS) return undefined
  const jest = new URL(url)
  const address = { host: jest.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(jest.port) + 1 }
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
  const wait = flags.some((flag) => WAITING.test(flag))
  checkPublishable(address, wait ? '--inspect-brk' : '--inspect')
  run.publish(address, wait ? '--inspect-brk' : '--inspect')
  if (!said) {
    said = true
    const where = `${jest.hostname}:${address.port}`
    process.stderr.write(
      `vitest-pool-rootless/jest: the test files run in a sandboxed worker with an inspector of its own at ${where}${wait ? ', waiting for a debugger' : ''}: attach there to stop in the tests (chrome://inspect: "Configure..." and add ${where}; VS Code: an "attach" configuration with port ${address.port}).\n`,
    )
  }
  const request: InspectRequest = { port: address.port, wait }
  return { publish: address.port, env: { [INSPECT_ENV]: JSON.stringify(request) } }
}
