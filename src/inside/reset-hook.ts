import { SandboxReset } from './sandbox-reset.js'

// Module state survives between files: a reused worker keeps this module loaded.
let sandbox: SandboxReset | undefined

/**
 * Runs inside a reused Vitest worker (isolate: false) before each test file: Vitest's
 * runner calls it (reset-runner.ts), or a setup file the pool puts first. The first file
 * finds the fresh sandbox the launcher built; every later file on the same worker gets
 * it rebuilt in place.
 */
export function resetBeforeFile(): void {
  if (!sandbox) {
    sandbox = SandboxReset.fromEnv()
    if (!sandbox) throw new Error("vitest-pool-rootless: this worker has no reset plan; the sandbox can't be reset between files")
    return
  }
  try {
    sandbox.reset()
  } catch (error) {
    throw new Error(`${(error as Error).message}. Run with isolate: true to get a fresh sandbox per file instead.`)
  }
}
