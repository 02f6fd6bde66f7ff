import { openRun, type OpenedRun } from '../engine/open-run.js'
import type { ResolvedPoolOptions } from '../plan/options.js'
import { checkInspector } from './inspector.js'

/**
 * Opens the run of a Vitest config (`rootless()` on Vitest 3, 4 and 5, and Vitest 3's
 * pool by name): the engine's `openRun`, with what only Vitest's command line can say
 * wrong (a debugger address the host can't listen on). `more` checks what one entry point can't take.
 */
export function openVitestRun(input: unknown, more?: (options: ResolvedPoolOptions) => void): OpenedRun | undefined {
  const say = (message: string) => void process.stderr.write(`${message}\n`)
  return openRun(input, say, (options) => {
    more?.(options)
    checkInspector(process.argv, options.network)
  })
}
