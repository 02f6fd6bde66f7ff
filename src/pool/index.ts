import type { PoolRunnerInitializer, Vitest } from 'vitest/node'
import { SandboxRun } from '../engine/run.js'
import { validatePoolOptions, type PoolOnlyOptions, type SandboxOptions } from '../ns/options.js'
import { checkInspector } from './inspector.js'
import { RootlessPoolWorker } from './worker.js'

/** Options of `rootless()`: the sandbox every test file runs in, and spare workers. */
export interface RootlessPoolOptions extends SandboxOptions, PoolOnlyOptions {}

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
 * error before any worker starts. The run's resources (warm user namespace, spare
 * workers, state dir) are released when Vitest closes, and on every config reload in
 * watch mode. `globalSetup` still runs on the host, outside the sandbox.
 */
export function rootless(options: RootlessPoolOptions = {}): PoolRunnerInitializer {
  // `warm` is the pool's own; everything else describes the sandbox
  const { warm, ...sandbox } = validatePoolOptions(options)
  checkInspector(process.argv, sandbox.network, (message) => process.stderr.write(message))
  const run = new SandboxRun(sandbox, {
    // an escape hatch for debugging and for the benchmark's side-by-side runs
    warmUserNamespace: process.env.VITEST_POOL_ROOTLESS_WARM_USERNS !== '0',
  })
  run.open()
  // after the probe: a run that can't start shows only its one error
  for (const warning of sandbox.warnings) process.stderr.write(`${warning}\n`)
  const closing = new WeakSet<Vitest>()
  return {
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
}
