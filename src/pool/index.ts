import type { PoolRunnerInitializer } from 'vitest/node'
import { validatePoolOptions, type SandboxOptions } from '../ns/options.js'
import { RunState } from '../engine/run.js'
import { RootlessPoolWorker } from './worker.js'

/** Options of `rootless()`: the sandbox every test file runs in, and spare workers. */
export interface RootlessPoolOptions extends SandboxOptions {
  /**
   * Booted workers to keep waiting (launcher, sandbox, node and Vitest's worker entry
   * already loaded), so the next test file doesn't wait for node to start. Each spare
   * is used for one file under `isolate: true`; none are kept under `isolate: false`.
   * `0` turns them off.
   * @default Math.min(maxWorkers, 2)
   */
  warm?: number
}

/**
 * A Vitest pool that runs every test file as uid 0 in its own user + mount + network
 * (+ UTS, IPC) namespace, with a private tmpfs on the temp dir and a private
 * `/etc/hosts` — no sudo, no Docker.
 *
 * ```ts
 * export default defineConfig({ test: { pool: rootless({ hosts: { 'api.example.test': '127.0.0.1' } }) } })
 * ```
 *
 * Options are validated here, when the config loads, so bad input stops the run before
 * any worker starts. `globalSetup` still runs on the host, outside the sandbox.
 */
export function rootless(options: RootlessPoolOptions = {}): PoolRunnerInitializer {
  // `warm` is the pool's own; everything else describes the sandbox
  const { warm, ...sandbox } = validatePoolOptions(options)
  for (const warning of sandbox.warnings) process.stderr.write(`${warning}\n`)
  const run = new RunState(sandbox, {
    // an escape hatch for debugging and for the benchmark's side-by-side runs
    warmUserNamespace: process.env.VITEST_POOL_ROOTLESS_WARM_USERNS !== '0',
  })
  return {
    name: 'rootless',
    createPoolWorker: (poolOptions) => new RootlessPoolWorker(poolOptions, run, warm),
  }
}
