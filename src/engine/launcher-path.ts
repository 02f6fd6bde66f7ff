import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package root: dist/engine/launcher-path.js (or src/engine/…ts in tests) is two levels down. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

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
  const shipped = join(PACKAGE_ROOT, 'native', 'build', PLATFORM, 'launcher')
  if (existsSync(shipped)) {
    assertExecutable(shipped, shipped)
    return shipped
  }
  const cached = join(cacheDir(env), `${packageVersion()}-${PLATFORM}`, 'launcher')
  if (existsSync(cached)) return cached
  const script = join(PACKAGE_ROOT, 'scripts', 'build-launcher.mjs')
  const build = spawnSync(process.execPath, [script, cached], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (build.status !== 0 || !existsSync(cached)) {
    const output = `${build.stdout ?? ''}${build.stderr ?? ''}`.trim()
    throw new LauncherNotFoundError(
      `vitest-pool-rootless: no launcher binary for ${PLATFORM} in this package, and building one into ${cached} failed.\n${output}\n` +
        `Install a C compiler (Debian/Ubuntu: sudo apt-get install gcc) and run again, or build it yourself: node ${script}`,
    )
  }
  return cached
}

function assertExecutable(path: string, what: string): void {
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new LauncherNotFoundError(
      `vitest-pool-rootless: the launcher ${what} is missing or not executable. Rebuild it: node ${join(PACKAGE_ROOT, 'scripts', 'build-launcher.mjs')}`,
    )
  }
}

function cacheDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vitest-pool-rootless')
}

/** This package's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version
}
