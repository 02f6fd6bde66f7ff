import { resetBeforeFile } from './reset-hook.js'

/** What this needs of a Vitest test runner class: its public `importFile`. */
type RunnerClass = abstract new (...args: any[]) => { importFile(filepath: string, source: 'collect' | 'setup'): unknown }

/**
 * Vitest's test runner, resetting a reused worker's sandbox (isolate: false) before each
 * test file: at the first `importFile` of a file -- its first setup file, or the file
 * itself when it has none -- so before any of its code runs, in a run and in a collect
 * (`vitest list`) alike. A file's last import is the file itself ('collect'), or a setup
 * file that failed, which ends it: the next import belongs to the next file.
 *
 * A setup file could do the same, but Vitest evaluates a setup file anew before every
 * file, which costs more than the reset itself (about 1.3 ms a file); this costs a call.
 * The pool uses it where the runner is Vitest's own (no `runner` option, not benchmark
 * mode); elsewhere it falls back to the setup file (reset-setup.ts).
 */
export function withSandboxReset<T extends RunnerClass>(Base: T): T {
  abstract class SandboxResetRunner extends Base {
    #nextFileStarts = true

    override importFile(filepath: string, source: 'collect' | 'setup'): unknown {
      // a reset that failed fails this file, and is tried again for the next
      if (this.#nextFileStarts) {
        resetBeforeFile()
        this.#nextFileStarts = false
      }
      if (source === 'collect') {
        this.#nextFileStarts = true
        return super.importFile(filepath, source)
      }
      const imported = (async () => super.importFile(filepath, source))()
      return imported.catch((error: unknown) => {
        this.#nextFileStarts = true
        throw error
      })
    }
  }
  return SandboxResetRunner
}
