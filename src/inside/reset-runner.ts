import { withBeforeFile, type ImportingRunner } from './before-file-runner.js'
import { resetBeforeFile } from './reset-hook.js'

/**
 * Vitest's test runner, resetting a reused worker's sandbox (isolate: false) before each
 * test file, before any of its code runs (withBeforeFile); a reset that failed fails this
 * file, and is tried again for the next.
 *
 * A setup file could do the same, but Vitest evaluates a setup file anew before every
 * file, which costs more than the reset itself (about 1.3 ms a file); this costs a call.
 * The pool uses it where the runner is Vitest's own (no `runner` option, not benchmark
 * mode); elsewhere it falls back to the setup file (reset-setup.ts).
 */
export function withSandboxReset<T extends ImportingRunner>(Base: T): T {
  return withBeforeFile(Base, resetBeforeFile)
}
