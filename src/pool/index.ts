import type { PoolRunnerInitializer, Vitest } from 'vitest/node'
import type { PoolOnlyOptions, SandboxOptions } from '../plan/options.js'
import { openVitestRun } from './open.js'
import { vitest3PoolModule } from './v3.js'
import { installedVitestMajor } from './vitest-internals.js'
import { RootlessPoolWorker } from './worker.js'

/** Options of `rootless()`: the sandbox every test file runs in, spare workers, the fallback. */
export interface RootlessPoolOptions extends SandboxOptions, PoolOnlyOptions {}

/**
 * What `rootless()` gives Vitest 4 and 5's `pool`: the rootless pool runner (a
 * `PoolRunnerInitializer`), typed without naming Vitest 4's types, so this package's
 * types also check against Vitest 3.
 */
export interface RootlessPoolRunner {
  readonly name: string
  createPoolWorker(options: any): any
}

/**
 * What `rootless()` gives Vitest's `pool`: on Vitest 4 and 5 the pool runner, or -- only
 * with `fallback: 'unsandboxed'` on a machine that can't build the sandbox -- Vitest's own
 * `'forks'`; on Vitest 3, which takes pools by module path, such a path (or `'forks'`).
 */
export type RootlessPool = typeof import('vitest/node') extends { ForksPoolWorker: unknown } ? RootlessPoolRunner | 'forks' : string

/**
 * A Vitest pool that runs every test file as uid 0 in its own user + mount + network
 * (+ UTS, IPC, pid) namespace, with a private tmpfs on the temp dir and a private
 * `/etc/hosts` — no sudo, no Docker.
 *
 * ```ts
 * export default defineConfig({ test: { pool: rootless({ hosts: { 'api.example.test': '127.0.0.1' } }) } })
 * ```
 *
 * Runs while the config loads: options are validated and one sandbox is built as a
 * probe, so bad input or a machine that can't build the sandbox stops the run with one
 * error before any worker starts (or, with `fallback: 'unsandboxed'`, a machine that
 * can't makes it Vitest's own `forks` pool, said once). The run's resources (warm user namespace, spare
 * workers, state dir) are released when Vitest closes, and on every config reload in
 * watch mode. `globalSetup` still runs on the host, outside the sandbox.
 */
export function rootless(options: RootlessPoolOptions = {}): RootlessPool {
  const opened = openVitestRun(options)
  // the machine can't build the sandbox, and the config says to run the ordinary way
  if (!opened) return 'forks' as RootlessPool
  const { run, warm } = opened
  // Vitest 3 takes a pool as a module path
  if (installedVitestMajor() === 3) return vitest3PoolModule(run, warm) as RootlessPool
  const closing = new WeakSet<Vitest>()
  const runner: RootlessPoolRunner & PoolRunnerInitializer = {
    name: 'rootless',
    createPoolWorker(poolOptions) {
      const vitest = poolOptions.project.vitest
      if (!closing.has(vitest)) {
        closing.add(vitest)
        // Vitest closes on exit and before each config reload (watch mode)
        vitest.onClose(() => run.close())
      }
      return new RootlessPoolWorker(poolOptions, run, warm)
    },
  }
  return runner as RootlessPool
}
