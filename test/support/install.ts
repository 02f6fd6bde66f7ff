import { spawnSync } from 'node:child_process'

/**
 * What a registry says for a moment and not a minute later: a dependency's new version
 * listed by the package that needs it before the registry serves the version itself
 * (npm ETARGET, pnpm NO_MATCHING_VERSION, Yarn YN0082), a dropped connection, a 5xx.
 */
const PASSING = /\bETARGET\b|No matching version|ERR_PNPM_NO_MATCHING_VERSION|YN0082|ECONNRESET|ETIMEDOUT|EAI_AGAIN|socket hang up|\b50[234]\b/

/** The waits before the second and third try: long enough for a registry to catch up. */
const WAITS_MS = [20_000, 60_000]

export interface Installed {
  status: number | null
  stdout: string
  stderr: string
}

/**
 * Runs a package manager's install, and runs it again after a wait when it failed on
 * something of the registry's that passes (above) -- not on anything else. The e2e
 * consumers resolve their dependencies fresh, as a user's new project does, so a package
 * published minutes ago is theirs too.
 */
export function install(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number; waits?: number[] }): Installed {
  for (let attempt = 0; ; attempt++) {
    // a retry asks the registry again rather than the cache's copy of what it said
    const env = attempt === 0 ? options.env : { ...(options.env ?? process.env), npm_config_prefer_online: 'true' }
    const run = spawnSync(command, args, { cwd: options.cwd, env, encoding: 'utf8', timeout: options.timeout ?? 280_000, stdio: ['ignore', 'pipe', 'pipe'] })
    const result = { status: run.status, stdout: run.stdout ?? '', stderr: run.stderr ?? '' }
    const wait = (options.waits ?? WAITS_MS)[attempt]
    if (result.status === 0 || wait === undefined || !PASSING.test(result.stdout + result.stderr)) return result
    process.stderr.write(`${command} ${args.join(' ')} in ${options.cwd}: the registry failed it (${(result.stdout + result.stderr).match(PASSING)![0]}); trying again in ${wait / 1000} s\n`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait)
  }
}
