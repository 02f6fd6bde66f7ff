import { RootlessEnvironmentError, SandboxError } from '../plan/errors.js'
import { LauncherNotFoundError } from './launcher-path.js'
import type { SandboxRun } from './run.js'

/**
 * Opens the run (builds one sandbox as a probe) and returns it; where the machine can't
 * build the sandbox -- not Linux, user namespaces off, no launcher and no compiler, a
 * TMPDIR that doesn't exist -- `fallback: 'unsandboxed'` turns that into `undefined`
 * after saying once why, and the caller runs the tests the ordinary way. `'error'` lets the error through, as does any
 * fault of the options: a mistake in the config is never a reason to run unsandboxed.
 */
export function openOrFallBack(create: () => SandboxRun, fallback: 'error' | 'unsandboxed', say: (message: string) => void, platform: NodeJS.Platform = process.platform): SandboxRun | undefined {
  try {
    if (platform !== 'linux') {
      throw new SandboxError(`vitest-pool-rootless: can't build the test sandbox on ${platform}: it needs Linux (user, mount and network namespaces).`, { step: 'platform', exitCode: null })
    }
    const run = create()
    run.open()
    return run
  } catch (error) {
    const machine = (error instanceof SandboxError && error.fault === 'machine') || error instanceof LauncherNotFoundError || error instanceof RootlessEnvironmentError
    if (fallback === 'error' || !machine) throw error
    say(`${(error as Error).message}\nvitest-pool-rootless: running the tests unsandboxed instead (fallback: 'unsandboxed'): no root, no private /tmp, network or hosts.\n`)
    return undefined
  }
}
