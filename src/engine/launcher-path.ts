import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { realpathOrSelf } from '../plan/paths.js'

/**
 * This package's own directory, links resolved (dist/engine/launcher-path.js, or
 * src/engine/…ts in tests, is two levels down): sandboxed entries load from it.
 */
export const PACKAGE_ROOT = realpathOrSelf(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'))

const PLATFORM = `${process.platform}-${process.arch}`

/** Thrown when no launcher binary exists and none can be built. */
export class LauncherNotFoundError extends Error {
  override readonly name = 'LauncherNotFoundError'
}

/**
 * Finds the launcher: `VITEST_POOL_ROOTLESS_LAUNCHER` if set, else the binary built
 * for this platform at install or pack time, else one built on first use from the
 * shipped C source into the user's cache (npm 11 runs no install scripts of ours).
 */
export function locateLauncher(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.VITEST_POOL_ROOTLESS_LAUNCHER
  if (override) {
    assertExecutable(override, `VITEST_POOL_ROOTLESS_LAUNCHER=${override}`)
    return override
  }
  const launcher = join(nativeDir(env), 'launcher')
  assertExecutable(launcher, launcher)
  return launcher
}

/**
 * The Node-API addon a reused worker resets its sandbox with (native/addon.c), from the
 * same build as the launcher.
 */
export function locateAddon(env: NodeJS.ProcessEnv = process.env): string {
  const addon = join(nativeDir(env), 'rootless.node')
  if (!existsSync(addon)) throw new LauncherNotFoundError(`vitest-pool-rootless: the addon ${addon} is missing. Rebuild it: node ${BUILD_SCRIPT}`)
  return addon
}

const BUILD_SCRIPT = join(PACKAGE_ROOT, 'scripts', 'build-native.mjs')

/** The directory holding this platform's launcher and addon: shipped, or built into the cache. */
function nativeDir(env: NodeJS.ProcessEnv): string {
  const shipped = join(PACKAGE_ROOT, 'native', 'build', PLATFORM)
  if (existsSync(join(shipped, 'launcher'))) return shipped
  const cached = join(cacheDir(env), `${packageVersion()}-${PLATFORM}`)
  if (existsSync(join(cached, 'launcher')) && existsSync(join(cached, 'rootless.node'))) return cached
  const build = spawnSync(process.execPath, [BUILD_SCRIPT, cached], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (build.status !== 0 || !existsSync(join(cached, 'launcher'))) {
    const output = `${build.stdout ?? ''}${build.stderr ?? ''}`.trim()
    throw new LauncherNotFoundError(
      `vitest-pool-rootless: no launcher binary for ${PLATFORM} in this package, and building one into ${cached} failed.\n${output}\n` +
        `Install a C compiler (Debian/Ubuntu: sudo apt-get install gcc) and run again, or build it yourself: node ${BUILD_SCRIPT}`,
    )
  }
  return cached
}

function assertExecutable(path: string, what: string): void {
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new LauncherNotFoundError(
      `vitest-pool-rootless: the launcher ${what} is missing or not executable. Rebuild it: node ${BUILD_SCRIPT}`,
    )
  }
}

/** This package's directory in the user's cache (built launchers, remembered probes). */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vitest-pool-rootless')
}

/** This package's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version
}
