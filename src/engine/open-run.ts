import { RootlessEnvironmentError, SandboxError } from '../plan/errors.js'
import { validatePoolOptions, type ResolvedPoolOptions } from '../plan/options.js'
import { LauncherNotFoundError } from './launcher-path.js'
import { runSettings, SandboxRun } from './run.js'

/** A run a runner's entry point opened: the sandbox's, and the options that are the runner's own. */
export interface OpenedRun {
  run: SandboxRun
  /** Booted spare workers wanted (`warm`); unset: the default for the worker count. */
  warm: number | undefined
}

/**
 * What every entry point (`rootless()`, Vitest 3's pool by name, the Jest runner) does
 * with the user's options, in one order: validate them (one error naming the option),
 * let the runner check what only it knows (`check`), build one sandbox as a probe, and
 * only then say the options' warnings -- a run that can't start shows just its one
 * error. Undefined where the machine can't build the sandbox and `fallback:
 * 'unsandboxed'` says to run the tests the ordinary way (said once, through `say`).
 */
export function openRun(input: unknown, say: (message: string) => void, check?: (options: ResolvedPoolOptions) => void): OpenedRun | undefined {
  const options = validatePoolOptions(input)
  check?.(options)
  const { warm, fallback, runnerPorts, ...sandbox } = options
  const run = openOrFallBack(() => new SandboxRun(sandbox, runSettings(runnerPorts)), fallback, say)
  if (!run) return undefined
  for (const warning of sandbox.warnings) say(warning)
  return { run, warm }
}

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
    say(`${(error as Error).message}\nvitest-pool-rootless: running the tests unsandboxed instead (fallback: 'unsandboxed'): no root, no private /tmp, network or hosts.`)
    return undefined
  }
}
