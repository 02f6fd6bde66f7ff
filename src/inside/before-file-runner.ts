/** What this needs of a Vitest test runner class: its public `importFile`. */
export type ImportingRunner = abstract new (...args: any[]) => { importFile(filepath: string, source: 'collect' | 'setup'): unknown }

/**
 * `Base` calling `before()` once before each test file: at the file's first `importFile`
 * -- its first setup file, or the file itself when it has none -- so before any of its
 * code runs, in a run and in a collect (`vitest list`) alike. A file's last import is
 * the file itself ('collect'), or a setup file that failed, which ends it: the next
 * import belongs to the next file. What `before()` throws fails that file, and `before()`
 * is called again for the next.
 */
export function withBeforeFile<T extends ImportingRunner>(Base: T, before: () => void): T {
  abstract class BeforeFileRunner extends Base {
    #nextFileStarts = true

    override importFile(filepath: string, source: 'collect' | 'setup'): unknown {
      if (this.#nextFileStarts) {
        before()
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
  return BeforeFileRunner
}
