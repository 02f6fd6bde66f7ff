import type { PoolRunnerInitializer } from 'vitest/node'
import { validateSandboxOptions, SANDBOX_OPTION_KEYS, type SandboxOptions } from '../ns/options.js'
import { RunState } from './run-state.js'
import { RootlessPoolWorker } from './worker.js'

/** Options of `rootless()`: the sandbox every test file runs in. */
export interface RootlessPoolOptions extends SandboxOptions {}

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
  const run = new RunState(validateSandboxOptions(options, (key) => key, SANDBOX_OPTION_KEYS))
  return {
    name: 'rootless',
    createPoolWorker: (poolOptions) => new RootlessPoolWorker(poolOptions, run),
  }
}
