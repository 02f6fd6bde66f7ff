import { checkPublishable, type PublishAddress } from '../engine/published-port.js'
import type { SandboxRun } from '../engine/run.js'

/** Node's inspector defaults, which Vitest's `--inspect` flags fall back to. */
const DEFAULT_ADDRESS: PublishAddress = { host: '127.0.0.1', port: 9229 }

const FLAG = /^--inspect(-brk)?(?:=(.*))?$/

/**
 * A debugger flag on the Vitest command line (`--inspect-brk=127.0.0.1:9229`) opens the
 * inspector inside each worker, on the sandbox's own loopback; the pool publishes it to
 * the host at the same address (engine/published-port.ts). Checked while the config
 * loads: an address the host can't listen on is one error, before any worker waits for
 * a debugger there. Flags in the config file (`test.inspectBrk`) are checked when the
 * first worker starts instead.
 */
export function checkInspector(argv: readonly string[], network: 'isolated' | 'egress' | 'host'): void {
  if (network === 'host') return
  for (const arg of argv) {
    const match = FLAG.exec(arg)
    if (!match) continue
    const address = parseAddress(match[2])
    if (address && address.port > 0) checkPublishable(address, `--inspect${match[1] ?? ''}`)
  }
}

/** `[host:]port` as Vitest reads it; undefined where Vitest itself would refuse it. */
function parseAddress(value: string | undefined): PublishAddress | undefined {
  if (value === undefined || value === '') return DEFAULT_ADDRESS
  const [host, port] = value.includes(':') ? value.split(':') : [undefined, value]
  const number = Number(port)
  if (!Number.isInteger(number) || number < 0 || number > 65535) return undefined
  return { host: host || DEFAULT_ADDRESS.host, port: number }
}

/** Vitest's resolved `inspector` config: what its worker opens (Vitest 3.2, 4 and 5). */
interface InspectorConfig {
  inspectBrk?: boolean | string
  inspector?: { enabled?: boolean; host?: string; port?: number }
}

/**
 * Where Vitest will open the inspector in each worker, the run publishes it to the host
 * at the same address; the inside port to publish, or undefined when no debugger is
 * asked for (or the worker shares the host's network, where it is reachable anyway).
 */
export function publishInspector(run: SandboxRun, config: InspectorConfig): number | undefined {
  const inspector = config.inspector
  if (!inspector?.enabled || run.options.network === 'host') return undefined
  const address = { host: inspector.host ?? DEFAULT_ADDRESS.host, port: inspector.port ?? DEFAULT_ADDRESS.port }
  run.publish(address, config.inspectBrk ? '--inspect-brk' : '--inspect')
  return address.port
}
