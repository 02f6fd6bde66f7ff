import { marked } from '../wire/wire.js'
import { crashError, takeCrashedFile } from './crashed-file.js'
import { SandboxReset } from './sandbox-reset.js'

// Module state survives between files: a reused worker keeps this module loaded.
let sandbox: SandboxReset | undefined

/**
 * Runs inside a reused Vitest worker (isolate: false) before each test file: Vitest's
 * runner calls it (reset-runner.ts), or a setup file the pool puts first. The first file
 * finds the fresh sandbox the launcher built; every later file on the same worker gets
 * it rebuilt in place. Each call tells the host that the next file of its request starts
 * (wire.ts `FileStartsMessage`), so a crash can be charged to that file alone. A worker
 * that took over from one that crashed fails the file that was running there at once.
 */
export function resetBeforeFile(): void {
  process.send?.(marked({ type: 'file-starts' }), () => {})
  if (!sandbox) {
    const crashed = takeCrashedFile()
    sandbox = SandboxReset.fromEnv()
    if (!sandbox) throw new Error("vitest-pool-rootless: this worker has no reset plan; the sandbox can't be reset between files")
    if (crashed) throw crashError(crashed)
    return
  }
  try {
    sandbox.reset()
  } catch (error) {
    throw new Error(`${(error as Error).message}. Run with isolate: true to get a fresh sandbox per file instead.`)
  }
}
